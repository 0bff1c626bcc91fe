/** Starting and stopping a server under test (bench/servers/server.ts) from the parent. */
import { benchFile, startChild, type Child, type Message } from './child.js';

export type ServerKind = 'switchboard' | 'echo' | 'rpcws' | 'relay';

export interface ServerHandle {
  kind: ServerKind;
  url: string;
  token: string;
  /** switchboard's data dir (its token and Unix socket); undefined for the others. */
  dataDir: string | undefined;
  child: Child;
  heap(): Promise<{ heapUsed: number; rss: number; external: number }>;
  metrics(): Promise<{ commits: number; opsCommitted: number } | null>;
  /** Starts recording the server's event-loop delay; the returned function stops and reports it (ms). */
  watchLoop(): Promise<() => Promise<LoopDelay>>;
  stop(): Promise<void>;
}

export interface LoopDelay {
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

export interface ServerOptions {
  /** Write a CPU profile of the server to this directory (node --cpu-prof). */
  profileDir?: string | undefined;
  /** Names the profile file. */
  label?: string;
  /** switchboard's --max-pending (the gateway's default when absent). */
  maxPendingPerSession?: number;
}

const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 15_000;

export async function startServer(kind: ServerKind, options: ServerOptions = {}): Promise<ServerHandle> {
  const execArgv = ['--expose-gc'];
  if (options.profileDir) {
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, `--cpu-prof-name=${options.label ?? kind}-${kind}.cpuprofile`);
  }
  const args = options.maxPendingPerSession === undefined ? [kind] : [kind, String(options.maxPendingPerSession)];
  const child = startChild(benchFile('servers/server.js'), args, execArgv);
  const ready = await child.next<Message & { url: string; token: string; dataDir?: string }>('ready', START_TIMEOUT_MS);
  return {
    kind,
    url: ready.url,
    token: ready.token,
    dataDir: ready.dataDir,
    child,
    heap: async () => {
      const reply = await child.request<Message & { heapUsed: number; rss: number; external: number }>({ type: 'heap' }, 'heap', 30_000);
      return { heapUsed: reply.heapUsed, rss: reply.rss, external: reply.external };
    },
    metrics: async () => {
      const reply = await child.request<Message & { metrics: { commits: number; opsCommitted: number } | null }>(
        { type: 'metrics' },
        'metrics',
        10_000,
      );
      return reply.metrics;
    },
    watchLoop: async () => {
      await child.request({ type: 'loop-start' }, 'loop-started', 10_000);
      return async () => {
        const reply = await child.request<Message & LoopDelay>({ type: 'loop-stop' }, 'loop', 10_000);
        return { p50: reply.p50, p99: reply.p99, max: reply.max, mean: reply.mean };
      };
    },
    stop: async () => {
      try {
        await child.request({ type: 'stop' }, 'stopped', STOP_TIMEOUT_MS);
      } finally {
        await child.exit(STOP_TIMEOUT_MS);
      }
    },
  };
}

/** Runs `body` against a fresh server of `kind`, and stops it whatever happens. */
export async function withServer<T>(kind: ServerKind, options: ServerOptions, body: (server: ServerHandle) => Promise<T>): Promise<T> {
  const server = await startServer(kind, options);
  try {
    return await body(server);
  } finally {
    await server.stop().catch(() => server.child.kill());
  }
}

/** Runs a load generator (bench/load/<name>.js) with `config` and returns its "result". */
export async function runLoad<T extends Message>(name: string, config: Record<string, unknown>, timeoutMs: number): Promise<T> {
  const child = startChild(benchFile(`load/${name}.js`), [JSON.stringify(config)]);
  try {
    return await child.next<T>('result', timeoutMs);
  } finally {
    await child.exit(5_000);
  }
}
