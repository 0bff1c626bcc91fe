/**
 * Durable system.event throughput against baselines, and the group commit it produces.
 *
 * Each server runs alone (2 cores: the server gets one, the load generator the other), rounds
 * alternate the order of servers so drift in machine load spreads over all of them, and a figure
 * is the median over rounds.
 */
import { ms, perSecond, type Row } from '../lib/report.js';
import { runLoad, withServer, type ServerKind } from '../lib/servers.js';
import { median, round } from '../lib/stats.js';
import type { Message } from '../lib/child.js';
import type { PartContext } from './context.js';

export const CONNECTIONS = 16;
export const SESSIONS = 200;
const PIPELINE_DEPTH = 64;
const ROUNDS = 3;
const WARMUP_MS = 1_000;
const DURATION_MS = 3_000;
/**
 * The cap of the at-cap figure: the load's 200 sessions reach it after 20,000 events, inside the
 * warm-up, so every append measured drops its session's oldest event. At the default cap (1,000)
 * the rounds above reach it only in their last half second or so.
 */
const AT_CAP_PENDING = 100;

interface LoadResult extends Message {
  calls: number;
  seconds: number;
  rate: number;
  total: number;
  unanswered: number;
  errors: number;
  firstError: string | null;
}

interface Measured {
  rate: number;
  load: LoadResult;
  /** Events answered per commit over the whole run (switchboard only). */
  store: { commits: number; opsCommitted: number; events: number } | null;
}

export async function measureThroughput(
  kind: ServerKind,
  inFlight: number,
  context: PartContext,
  label: string,
  maxPendingPerSession?: number,
): Promise<Measured> {
  return withServer(kind, { profileDir: context.profileDir, label, maxPendingPerSession }, async (server) => {
    const before = await server.metrics();
    const load = await runLoad<LoadResult>(
      'throughput',
      { url: server.url, token: server.token, connections: CONNECTIONS, inFlight, sessions: SESSIONS, warmupMs: WARMUP_MS, durationMs: DURATION_MS },
      WARMUP_MS + DURATION_MS + 30_000,
    );
    const after = await server.metrics();
    if (load.errors > 0) throw new Error(`${kind} answered ${load.errors} calls with an error, first: ${load.firstError}`);
    if (load.unanswered > 0) throw new Error(`${kind} left ${load.unanswered} calls unanswered`);
    const store =
      before && after
        ? { commits: after.commits - before.commits, opsCommitted: after.opsCommitted - before.opsCommitted, events: load.total }
        : null;
    const cap = maxPendingPerSession === undefined ? '' : ` at a cap of ${maxPendingPerSession}`;
    context.log(`  ${kind.padEnd(11)} ${CONNECTIONS}×${inFlight}${cap}: ${perSecond(load.rate)}${store ? `, ${round(store.events / store.commits)} events/commit` : ''}`);
    return { rate: load.rate, load, store };
  });
}

/** Median rate per kind over ROUNDS rounds, each round in a rotated order. */
async function compare(kinds: readonly ServerKind[], inFlight: number, context: PartContext, part: string) {
  const runs = new Map<ServerKind, Measured[]>(kinds.map((kind) => [kind, []]));
  for (let pass = 0; pass < ROUNDS; pass++) {
    const order = kinds.map((_, i) => kinds[(i + pass) % kinds.length]!);
    for (const kind of order) runs.get(kind)!.push(await measureThroughput(kind, inFlight, context, `${part}-r${pass}`));
  }
  const rate = (kind: ServerKind) => median(runs.get(kind)!.map((run) => run.rate));
  return { runs, rate };
}

export function storeRow(shape: string, id: string, runs: readonly Measured[]): Row {
  const stores = runs.map((run) => run.store).filter((store): store is NonNullable<Measured['store']> => store !== null);
  if (stores.length === 0) {
    return {
      id,
      figure: `store: events per disk flush, ${shape}`,
      switchboard: 'n/a (no storeMetrics)',
      baseline: '—',
      ratio: null,
      target: '> 1',
      pass: null,
      values: {},
    };
  }
  const events = stores.reduce((sum, store) => sum + store.events, 0);
  const commits = stores.reduce((sum, store) => sum + store.commits, 0);
  const ops = stores.reduce((sum, store) => sum + store.opsCommitted, 0);
  const perFlush = events / commits;
  return {
    id,
    figure: `store: events per disk flush, ${shape}`,
    switchboard: `${round(perFlush)} events/commit`,
    baseline: '—',
    ratio: null,
    target: '> 1',
    pass: perFlush > 1,
    values: { events, commits, opsCommitted: ops, eventsPerCommit: perFlush, opsPerCommit: ops / commits },
  };
}

function runValues(runs: Map<ServerKind, Measured[]>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [kind, list] of runs) values[kind] = list.map((run) => round(run.rate));
  return values;
}

/** 16 connections × 64 in flight: switchboard vs raw ws echo and vs rpc-websockets. */
export async function pipelined(context: PartContext): Promise<Row[]> {
  context.log(`throughput: ${CONNECTIONS} connections × ${PIPELINE_DEPTH} in flight, ${SESSIONS} sessions, ${ROUNDS} rounds`);
  const { runs, rate } = await compare(['echo', 'rpcws', 'switchboard'], PIPELINE_DEPTH, context, 'pipelined');
  const sb = rate('switchboard');
  const atCap: Measured[] = [];
  for (let pass = 0; pass < ROUNDS; pass++) {
    atCap.push(await measureThroughput('switchboard', PIPELINE_DEPTH, context, `pipelined-cap-r${pass}`, AT_CAP_PENDING));
  }
  const capRate = median(atCap.map((run) => run.rate));
  const shape = `${CONNECTIONS} conns × ${PIPELINE_DEPTH} in flight`;
  const values = { ...runValues(runs), connections: CONNECTIONS, inFlight: PIPELINE_DEPTH, sessions: SESSIONS, durationMs: DURATION_MS };
  return [
    {
      id: 'throughput.pipelined.echo',
      figure: `durable system.event throughput, ${shape}`,
      switchboard: perSecond(sb),
      baseline: `${perSecond(rate('echo'))} raw ws echo`,
      ratio: sb / rate('echo'),
      target: '≥ 0.50×',
      pass: sb / rate('echo') >= 0.5,
      values,
    },
    {
      id: 'throughput.pipelined.rpcws',
      figure: `durable system.event throughput, ${shape}`,
      switchboard: perSecond(sb),
      baseline: `${perSecond(rate('rpcws'))} rpc-websockets (memory)`,
      ratio: sb / rate('rpcws'),
      target: '≥ 1.00×',
      pass: sb / rate('rpcws') >= 1,
      values,
    },
    storeRow(shape, 'store.pipelined', runs.get('switchboard')!),
    {
      id: 'throughput.pipelined.cap',
      figure: `the same, every session at its pending cap (${AT_CAP_PENDING}): each append drops the oldest`,
      switchboard: perSecond(capRate),
      baseline: `${perSecond(sb)} switchboard above`,
      ratio: capRate / sb,
      target: '— (report)',
      pass: null,
      values: { rounds: atCap.map((run) => round(run.rate)), maxPendingPerSession: AT_CAP_PENDING },
    },
  ];
}

/** 16 connections × 1 in flight: every call waits for its commit before the next is sent. */
export async function lowConcurrency(context: PartContext): Promise<Row[]> {
  context.log(`throughput: ${CONNECTIONS} connections × 1 in flight, ${ROUNDS} rounds`);
  const { runs, rate } = await compare(['echo', 'switchboard'], 1, context, 'lowconc');
  const sb = rate('switchboard');
  const shape = `${CONNECTIONS} conns × 1 in flight`;
  const latency = CONNECTIONS / sb;
  return [
    {
      id: 'throughput.lowconc.echo',
      figure: `durable system.event throughput, ${shape}`,
      switchboard: `${perSecond(sb)} (${ms(latency * 1000)}/call)`,
      baseline: `${perSecond(rate('echo'))} raw ws echo`,
      ratio: sb / rate('echo'),
      target: '≥ 0.30×',
      pass: sb / rate('echo') >= 0.3,
      values: { ...runValues(runs), connections: CONNECTIONS, inFlight: 1, sessions: SESSIONS, durationMs: DURATION_MS },
    },
    storeRow(shape, 'store.lowconc', runs.get('switchboard')!),
  ];
}

/** Only the group-commit figures: one switchboard run per shape. */
export async function store(context: PartContext): Promise<Row[]> {
  context.log('store: group commit under load');
  const pipelinedRun = await measureThroughput('switchboard', PIPELINE_DEPTH, context, 'store-pipelined');
  const lowRun = await measureThroughput('switchboard', 1, context, 'store-lowconc');
  return [
    storeRow(`${CONNECTIONS} conns × ${PIPELINE_DEPTH} in flight`, 'store.pipelined', [pipelinedRun]),
    storeRow(`${CONNECTIONS} conns × 1 in flight`, 'store.lowconc', [lowRun]),
  ];
}
