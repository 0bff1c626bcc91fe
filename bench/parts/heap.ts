/**
 * Server heap per idle connection: heapUsed after full GCs, before and after opening N
 * connections (authenticated and subscribed to a session each, for switchboard), divided by N.
 * The baseline is a raw ws server holding the same number of idle connections.
 */
import { execFileSync } from 'node:child_process';
import { benchFile, startChild, type Message } from '../lib/child.js';
import type { Row } from '../lib/report.js';
import { withServer, type ServerHandle, type ServerKind } from '../lib/servers.js';
import { round } from '../lib/stats.js';
import type { PartContext } from './context.js';

const WANTED_CONNECTIONS = 5_000;
/** File descriptors each process needs besides the sockets (stdio, IPC, the database, node's own). */
const FD_HEADROOM = 256;
/** Connections per loopback source address: under the gateway's per-address cap (1024). */
const PER_ADDRESS = 1_000;
const WARMUP_CONNECTIONS = 20;
/** Lets timers and the subscriptions' replay settle before the heap is read. */
const SETTLE_MS = 500;

function fileLimit(): number {
  try {
    const out = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
  } catch {
    return 1024;
  }
}

async function holdIdle(server: ServerHandle, count: number, whileOpen: () => Promise<void>): Promise<number> {
  const child = startChild(benchFile('load/idle.js'), [
    JSON.stringify({ url: server.url, token: server.token, count, perAddress: PER_ADDRESS, subscribe: server.kind === 'switchboard' }),
  ]);
  try {
    const opened = await child.next<Message & { ms: number }>('opened', 120_000);
    await whileOpen();
    await child.request({ type: 'close' }, 'closed', 30_000);
    return opened.ms;
  } finally {
    await child.exit(10_000);
  }
}

interface HeapResult {
  perConnection: number;
  rssPerConnection: number;
  openMs: number;
}

async function measure(kind: ServerKind, count: number, context: PartContext): Promise<HeapResult> {
  return withServer(kind, { profileDir: context.profileDir, label: 'heap' }, async (server) => {
    // First connections compile code paths and grow caches; keep that out of the per-connection figure.
    await holdIdle(server, WARMUP_CONNECTIONS, async () => {});
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
    const before = await server.heap();
    let after = before;
    const openMs = await holdIdle(server, count, async () => {
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
      after = await server.heap();
    });
    const result = {
      perConnection: (after.heapUsed - before.heapUsed) / count,
      rssPerConnection: (after.rss - before.rss) / count,
      openMs,
    };
    context.log(`  ${kind.padEnd(11)} ${round(result.perConnection / 1024)} KiB heap/connection (rss ${round(result.rssPerConnection / 1024)} KiB), opened in ${Math.round(openMs)} ms`);
    return result;
  });
}

export async function heap(context: PartContext): Promise<Row[]> {
  const limit = fileLimit();
  const count = Math.max(100, Math.min(WANTED_CONNECTIONS, limit - FD_HEADROOM));
  if (count < WANTED_CONNECTIONS) {
    context.notes.push(`heap: measured at ${count} connections, not ${WANTED_CONNECTIONS}: \`ulimit -n\` is ${limit}; raise it to measure at full size`);
  }
  context.log(`heap: ${count} idle connections (switchboard: authenticated and subscribed)`);
  const baseline = await measure('echo', count, context);
  const sb = await measure('switchboard', count, context);
  const kib = (bytes: number) => `${round(bytes / 1024)} KiB`;
  const ratio = sb.perConnection / baseline.perConnection;
  return [
    {
      id: 'heap.idle',
      figure: `heap per idle subscribed connection, ${count.toLocaleString('en-US')} connections`,
      switchboard: `${kib(sb.perConnection)}/conn`,
      baseline: `${kib(baseline.perConnection)}/conn raw ws`,
      ratio,
      target: '≤ 1.50×',
      pass: ratio <= 1.5,
      values: {
        connections: count,
        fileLimit: limit,
        switchboardBytes: Math.round(sb.perConnection),
        rawWsBytes: Math.round(baseline.perConnection),
        switchboardRssBytes: Math.round(sb.rssPerConnection),
        rawWsRssBytes: Math.round(baseline.rssPerConnection),
      },
    },
  ];
}
