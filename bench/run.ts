/**
 * `npm run bench` / `node dist/bench/run.js [part...] [--profile] [--strict]`
 *
 * Runs the parts asked for (all by default), prints one table (figure, switchboard, baseline,
 * ratio, target, result) and writes the same rows to bench/results/latest.json. Every figure is
 * a ratio against a baseline measured in the same run, because the machine is shared and noisy.
 *
 * --profile  servers under test write CPU profiles (node --cpu-prof) to bench/results/profiles/;
 *            summarise one with `node dist/bench/profile-summary.js <file>`.
 * --strict   exit 1 when a target is missed (by default only a crashed part exits 1).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAll } from './lib/child.js';
import { machine, table, writeJson, type Report, type Row } from './lib/report.js';
import { cli } from './parts/cli.js';
import type { PartContext } from './parts/context.js';
import { disk } from './parts/disk.js';
import { heap } from './parts/heap.js';
import { fanout, push } from './parts/latency.js';
import { lowConcurrency, pipelined, store } from './parts/throughput.js';

const PARTS: Record<string, (context: PartContext) => Promise<Row[]>> = {
  cli,
  throughput: pipelined,
  lowconc: lowConcurrency,
  disk,
  latency: push,
  fanout,
  heap,
  // Its figures also come with throughput and lowconc; alone it runs only switchboard.
  store,
};
const DEFAULT_PARTS = ['cli', 'throughput', 'lowconc', 'disk', 'latency', 'fanout', 'heap'];

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = path.join(ROOT, 'bench', 'results');

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: node dist/bench/run.js [${Object.keys(PARTS).join('|')}|all ...] [--profile] [--strict]\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<number> {
  const flags = new Set(argv.filter((arg) => arg.startsWith('--')));
  for (const flag of flags) if (flag !== '--profile' && flag !== '--strict') usage(`unknown option ${flag}`);
  const named = argv.filter((arg) => !arg.startsWith('--'));
  for (const name of named) if (name !== 'all' && !(name in PARTS)) usage(`unknown part "${name}"`);
  const parts = named.length === 0 || named.includes('all') ? DEFAULT_PARTS : [...new Set(named)];

  const startedAt = new Date();
  const context: PartContext = {
    profileDir: flags.has('--profile') ? path.join(RESULTS, 'profiles', startedAt.toISOString().replace(/[:.]/g, '-')) : undefined,
    notes: [],
    log: (line) => process.stderr.write(`${line}\n`),
  };
  const rows: Row[] = [];
  let crashed = false;
  for (const part of parts) {
    try {
      rows.push(...(await PARTS[part]!(context)));
    } catch (error) {
      crashed = true;
      const message = (error as Error)?.message ?? String(error);
      context.log(`${part}: failed: ${message}`);
      rows.push({ id: `${part}.error`, figure: `${part}`, switchboard: `error: ${message.split('\n')[0]}`, baseline: '—', ratio: null, target: '—', pass: false, values: {} });
      killAll();
    }
  }

  const report: Report = {
    startedAt: startedAt.toISOString(),
    durationSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
    parts,
    machine: machine(),
    rows,
    notes: context.notes,
  };
  const file = path.join(RESULTS, 'latest.json');
  writeJson(file, report);
  process.stdout.write(`\n${table(rows)}\n\n`);
  for (const note of context.notes) process.stdout.write(`note: ${note}\n`);
  if (context.profileDir) process.stdout.write(`CPU profiles of the servers: ${path.relative(process.cwd(), context.profileDir)}\n`);
  process.stdout.write(`${report.durationSeconds} s on ${report.machine.cpus} × ${report.machine.cpuModel}, load ${report.machine.loadavg.join(' ')}; JSON: ${path.relative(process.cwd(), file)}\n`);
  if (crashed) return 1;
  return flags.has('--strict') && rows.some((row) => row.pass === false) ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`bench: ${(error as Error)?.stack ?? String(error)}\n`);
    killAll();
    process.exit(1);
  },
);
