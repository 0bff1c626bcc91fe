/**
 * Push latency under a steady rate: publisher -> server -> subscriber, measured by the subscriber
 * from the send time written into the event text. The raw ws relay (same sockets, same frames, a
 * forward with no work) runs beside it to show what the machine and the hops cost by themselves.
 *
 * Tails are what machine noise moves most, so relay and switchboard alternate over a few short
 * rounds and each figure pools the samples of its rounds.
 */
import type { Message } from '../lib/child.js';
import { ms, type Row } from '../lib/report.js';
import { runLoad, withServer, type LoopDelay, type ServerKind } from '../lib/servers.js';
import { round, summarize, type LatencySummary } from '../lib/stats.js';
import type { LatencyShape as Shape } from '../load/latency.js';
import type { PartContext } from './context.js';

const TARGET_P99_MS = 5;
const ROUNDS = 3;
const WARMUP_MS = 500;
const DURATION_MS = 3_000;

interface LatencyResult extends Message {
  samples: number[];
  /** Events published (warm-up included). */
  sent: number;
  sentMeasured: number;
  expected: number;
  received: number;
  publishErrors: number;
  firstPublishError: string | null;
  unexpected: number;
  firstUnexpected: string | null;
}

interface Pooled {
  latency: LatencySummary;
  expected: number;
  /** The server's event-loop delay per round: how long it blocked (ms). */
  loop: LoopDelay[];
  commits: Commits[];
}

interface Commits {
  /** Commits (each one WAL fsync at least) per second of publishing (subscribe-time commits included, a few). */
  perSecond: number;
  eventsPerCommit: number;
}

async function measure(
  kind: ServerKind,
  shape: Shape,
  context: PartContext,
  label: string,
): Promise<{ result: LatencyResult; loop: LoopDelay; commits: Commits | null }> {
  return withServer(kind, { profileDir: context.profileDir, label }, async (server) => {
    const before = await server.metrics();
    const stopWatching = await server.watchLoop();
    const result = await runLoad<LatencyResult>(
      'latency',
      { server: kind, url: server.url, token: server.token, warmupMs: WARMUP_MS, durationMs: DURATION_MS, ...shape },
      WARMUP_MS + DURATION_MS + 60_000,
    );
    const loop = await stopWatching();
    const after = await server.metrics();
    const seconds = (WARMUP_MS + DURATION_MS) / 1000;
    const commits =
      before && after
        ? { perSecond: (after.commits - before.commits) / seconds, eventsPerCommit: result.sent / (after.commits - before.commits) }
        : null;
    if (result.publishErrors > 0) throw new Error(`${kind}: ${result.publishErrors} system.event calls failed, first: ${result.firstPublishError}`);
    if (result.unexpected > 0) context.notes.push(`${label} ${kind}: ${result.unexpected} pushed frames without a timestamp, first: ${result.firstUnexpected}`);
    const { p50, p99, max } = summarize(result.samples);
    context.log(
      `  ${kind.padEnd(11)} p50 ${round(p50)} ms, p99 ${round(p99)} ms, max ${round(max)} ms; ` +
        `${result.samples.length}/${result.expected} pushes; server loop delay p99 ${round(loop.p99)} ms, max ${round(loop.max)} ms` +
        (commits ? `; ${Math.round(commits.perSecond)} commits/s` : ''),
    );
    return { result, loop, commits };
  });
}

async function compare(shape: Shape, context: PartContext, label: string): Promise<Record<'relay' | 'switchboard', Pooled>> {
  const samples = { relay: [] as number[], switchboard: [] as number[] };
  const expected = { relay: 0, switchboard: 0 };
  const loops = { relay: [] as LoopDelay[], switchboard: [] as LoopDelay[] };
  const commits = { relay: [] as Commits[], switchboard: [] as Commits[] };
  for (let pass = 0; pass < ROUNDS; pass++) {
    const order: Array<'relay' | 'switchboard'> = pass % 2 === 0 ? ['relay', 'switchboard'] : ['switchboard', 'relay'];
    for (const kind of order) {
      const { result, loop, commits: committed } = await measure(kind, shape, context, `${label}-r${pass}`);
      if (committed) commits[kind].push(committed);
      for (const sample of result.samples) samples[kind].push(sample);
      expected[kind] += result.expected;
      loops[kind].push(loop);
    }
  }
  const pool = (kind: 'relay' | 'switchboard'): Pooled => ({
    latency: summarize(samples[kind]),
    expected: expected[kind],
    loop: loops[kind],
    commits: commits[kind],
  });
  return { relay: pool('relay'), switchboard: pool('switchboard') };
}

function describe(latency: LatencySummary): string {
  return `p50 ${round(latency.p50)} / p99 ${round(latency.p99)} / max ${round(latency.max)} ms`;
}

function row(id: string, figure: string, shape: Shape, pooled: Record<'relay' | 'switchboard', Pooled>, context: PartContext): Row {
  const { switchboard: sb, relay } = pooled;
  const complete = sb.latency.count >= sb.expected;
  if (!complete) context.notes.push(`${id}: ${sb.expected - sb.latency.count} of ${sb.expected} pushes never arrived`);
  const pick = (p: Pooled) => ({
    ...Object.fromEntries(Object.entries(p.latency).map(([name, value]) => [name, round(value)])),
    expected: p.expected,
    missing: p.expected - p.latency.count,
    serverLoopDelayMs: p.loop.map((loop) => ({ p99: round(loop.p99), max: round(loop.max) })),
    ...(p.commits.length > 0
      ? { commits: p.commits.map((c) => ({ perSecond: Math.round(c.perSecond), eventsPerCommit: round(c.eventsPerCommit) })) }
      : {}),
  });
  return {
    id,
    figure,
    switchboard: describe(sb.latency),
    baseline: `${describe(relay.latency)} raw ws relay`,
    ratio: sb.latency.p99 / relay.latency.p99,
    target: `p99 ≤ ${ms(TARGET_P99_MS)}`,
    pass: complete && sb.latency.p99 <= TARGET_P99_MS,
    values: { ...shape, rounds: ROUNDS, durationMs: DURATION_MS, switchboard: pick(sb), relay: pick(relay) },
  };
}

/** 1,000 events/s over 100 sessions, one subscriber each. */
export async function push(context: PartContext): Promise<Row[]> {
  const shape: Shape = { sessions: 100, subscribers: 100, target: 'session', agentId: 'lat', rate: 1_000, publishers: 4 };
  context.log(`latency: ${shape.rate} events/s over ${shape.sessions} sessions, one subscriber each, ${ROUNDS} rounds`);
  const pooled = await compare(shape, context, 'latency');
  return [row('latency.push', `push latency, ${shape.rate} ev/s over ${shape.sessions} sessions × 1 subscriber`, shape, pooled, context)];
}

/** 100 events/s to one agent whose 100 subscribers each get every event: 10,000 pushes/s. */
export async function fanout(context: PartContext): Promise<Row[]> {
  const shape: Shape = { sessions: 10, subscribers: 100, target: 'agent', agentId: 'fan', rate: 100, publishers: 1 };
  context.log(`fan-out: ${shape.rate} events/s to one agent with ${shape.subscribers} subscribers, ${ROUNDS} rounds`);
  const pooled = await compare(shape, context, 'fanout');
  return [row('latency.fanout', `fan-out, ${shape.rate} ev/s to 1 agent × ${shape.subscribers} subscribers`, shape, pooled, context)];
}
