/**
 * CLI round trip: spawn the installed binary (the esbuild bundle dist/bin/switchboard.cjs) running
 * `system event ... --json`, which calls, prints and exits, against spawning `node -e 0` (what any
 * Node CLI pays before its first line runs). Runs are interleaved so machine noise hits both
 * alike; the figure is the median. The call is the one the README shows, given no URL or token:
 * the CLI reads the token in the data dir and calls over the gateway's socket there (--data-dir
 * names the bench gateway's). Timed beside it: the same call given --url and --token (over TCP),
 * and `switchboard --version` (start-up alone).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ms, type Row } from '../lib/report.js';
import { withServer } from '../lib/servers.js';
import { median, round } from '../lib/stats.js';
import type { PartContext } from './context.js';

const RUNS = 25;
const WARMUP_RUNS = 2;
const RUN_TIMEOUT_MS = 20_000;

/** The package's bin, dist/bin/switchboard.cjs, from dist/bench/parts/. */
const CLI_PATH = fileURLToPath(new URL('../../bin/switchboard.cjs', import.meta.url));

interface Timed {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

function timeSpawn(args: string[], env: NodeJS.ProcessEnv): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_TIMEOUT_MS);
    child.once('error', reject);
    // 'close': the process exited and its output is flushed, the moment a calling script continues.
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ ms: performance.now() - started, code, stdout, stderr });
    });
  });
}

/**
 * The environment of a user with no switchboard configuration: no SWITCHBOARD_*, an empty data
 * home. NODE_* goes too: a NODE_EXTRA_CA_CERTS (set on the development VM) makes every Node process
 * read a CA bundle at start (~29 ms), which would hide the CLI's own cost in both columns.
 */
function cleanEnv(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('SWITCHBOARD_') && !name.startsWith('NODE_')) env[name] = value;
  env['XDG_DATA_HOME'] = home;
  return env;
}

export async function cli(context: PartContext): Promise<Row[]> {
  context.log(`cli: ${RUNS} interleaved runs each of \`node -e 0\` and \`switchboard system event --json\` (data dir's socket, and over TCP)`);
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-home-'));
  try {
    return await withServer('switchboard', { profileDir: context.profileDir, label: 'cli' }, async (server) => {
      const env = cleanEnv(home);
      let call = 0;
      const eventArgs = () => [CLI_PATH, 'system', 'event', '--text', `bench cli call ${++call}`, '--json'];
      const variants: Array<{ name: string; args: () => string[]; check: boolean }> = [
        { name: 'node', args: () => ['-e', '0'], check: false },
        { name: 'cli', args: () => [...eventArgs(), '--data-dir', server.dataDir!], check: true },
        { name: 'tcp', args: () => [...eventArgs(), '--url', server.url, '--token', server.token], check: true },
        { name: 'version', args: () => [CLI_PATH, '--version'], check: false },
      ];
      const samples = new Map<string, number[]>(variants.map((variant) => [variant.name, []]));
      for (let run = -WARMUP_RUNS; run < RUNS; run++) {
        // Rotate the order too, so no variant always runs right after another.
        for (let i = 0; i < variants.length; i++) {
          const variant = variants[(i + Math.max(run, 0)) % variants.length]!;
          const timed = await timeSpawn(variant.args(), env);
          if (variant.check) checkOutput(variant.name, timed);
          if (run >= 0) samples.get(variant.name)!.push(timed.ms);
        }
      }
      const node = median(samples.get('node')!);
      const cliMs = median(samples.get('cli')!);
      const tcpMs = median(samples.get('tcp')!);
      context.log(`  node -e 0 ${ms(node)}, cli ${ms(cliMs)}, cli over TCP ${ms(tcpMs)}, cli --version ${ms(median(samples.get('version')!))}`);
      return [
        {
          id: 'cli.roundtrip',
          figure: `CLI round trip (system event --json, no URL or token given), median of ${RUNS}`,
          switchboard: ms(cliMs),
          baseline: `${ms(node)} node -e 0`,
          ratio: cliMs / node,
          target: '≤ 1.50×',
          pass: cliMs / node <= 1.5,
          values: {
            runs: RUNS,
            medianMs: { node: round(node), cli: round(cliMs), cliOverTcp: round(tcpMs), cliVersion: round(median(samples.get('version')!)) },
            cliMs: samples.get('cli')!.map((v) => round(v)),
            cliOverTcpMs: samples.get('tcp')!.map((v) => round(v)),
            nodeMs: samples.get('node')!.map((v) => round(v)),
            cliVersionMs: samples.get('version')!.map((v) => round(v)),
          },
        },
      ];
    });
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
}

function checkOutput(name: string, timed: Timed): void {
  if (timed.code !== 0) throw new Error(`${name}: exit code ${timed.code}: ${timed.stderr.trim() || timed.stdout.trim()}`);
  const result = JSON.parse(timed.stdout) as { eventId?: unknown };
  if (typeof result.eventId !== 'string') throw new Error(`${name}: no eventId in ${timed.stdout.slice(0, 200)}`);
}
