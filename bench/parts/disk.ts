/**
 * The disk's floor under every durable figure: how long one fdatasync of a 4 KiB append takes on
 * the file system holding the data dirs (the OS temp dir). A commit in WAL mode with
 * synchronous=FULL needs at least one, so no push can be durable in less. Reported, no target.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ms, type Row } from '../lib/report.js';
import { round, summarize } from '../lib/stats.js';
import type { PartContext } from './context.js';

const SYNCS = 300;

export async function disk(context: PartContext): Promise<Row[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-disk-'));
  const page = Buffer.alloc(4096, 1);
  const samples: number[] = [];
  const fd = fs.openSync(path.join(dir, 'sync-test'), 'w');
  try {
    for (let i = 0; i < SYNCS; i++) {
      const started = performance.now();
      fs.writeSync(fd, page);
      fs.fdatasyncSync(fd);
      samples.push(performance.now() - started);
    }
  } finally {
    fs.closeSync(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const latency = summarize(samples);
  context.log(`disk: fdatasync p50 ${ms(latency.p50)}, p99 ${ms(latency.p99)}, max ${ms(latency.max)}`);
  return [
    {
      id: 'disk.fdatasync',
      figure: 'disk: 4 KiB write + fdatasync (floor of one commit)',
      switchboard: `p50 ${round(latency.p50)} / p99 ${round(latency.p99)} / max ${round(latency.max)} ms`,
      baseline: '—',
      ratio: null,
      target: '— (context)',
      pass: null,
      values: { syncs: SYNCS, p50: round(latency.p50), p99: round(latency.p99), max: round(latency.max), dir: os.tmpdir() },
    },
  ];
}
