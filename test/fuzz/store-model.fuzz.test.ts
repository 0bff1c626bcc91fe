/**
 * The store against a model of its session queues, with crashes: random batches of appends (texts
 * repeated for dedupe, contextKeys for replacement, a small cap for drops, and a `complete` that
 * throws now and then, which rolls the batch back and runs it again guarded), acks, drains, peeks
 * and stats go to the store and to a plain in-memory model, and every answer must match the
 * model's. Between batches, now and then, the database and its WAL are copied (a crash at that
 * commit boundary leaves exactly that) and opened as a second store, which must list, count,
 * peek and continue seqs as the model says; half the time the run carries on from that copy, so
 * crashes chain.
 *
 * Each seed draws its own cap (1 to 4), and a session cache of 2 to 6 (its generations turn over
 * all the time among the five sessions, dropping written states and carrying unwritten ones).
 * SB_FUZZ_SEED=<seed> runs that seed alone.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { openStore, type AppendOutcome, type AppendRequest, type SqliteEventStore } from '../../src/store/index.js';
import { DATA_FILES } from '../../src/protocol/constants.js';

const test = suite('fuzz: store against a model, with crashes');

const SEEDS = process.env['SB_FUZZ_SEED'] === undefined ? [1, 2, 3, 4, 5, 6, 7, 8] : [Number(process.env['SB_FUZZ_SEED'])];
const ROUNDS = 120;
const KEYS = ['s1', 's2', 's3', 's4', 's5'];
/** s5 belongs to another agent, so per-agent counts are checked too. */
const agentOf = (sessionKey: string) => (sessionKey === 's5' ? 'other' : 'main');

/** xorshift32: the same seed gives the same run. */
function seededRandom(seed: number): () => number {
  let state = Math.imul(seed, 2654435761) ^ 0x9e3779b9 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

interface ModelEvent {
  seq: number;
  eventId: string;
  storedAt: number;
  text: string;
  contextKey: string | null;
}

interface ModelSession {
  lastSeq: number;
  lastEventAt: number;
  pending: ModelEvent[];
}

type Settled<T> = { value: T } | { error: unknown };
const settle = <T>(promise: Promise<T>): Promise<Settled<T>> => promise.then((value) => ({ value }), (error: unknown) => ({ error }));

function answerOf<T>(settled: Settled<T>, what: string): T {
  if ('error' in settled) throw new Error(`${what} failed: ${String(settled.error)}`);
  return settled.value;
}

async function run(seed: number): Promise<void> {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const cap = 1 + Math.floor(random() * 4);
  const sessionCacheSize = 2 + Math.floor(random() * 5);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-store-fuzz-'));
  const model = new Map(KEYS.map((key): [string, ModelSession] => [key, { lastSeq: 0, lastEventAt: 0, pending: [] }]));
  const session = (key: string) => model.get(key)!;
  let copies = 0;
  const newDir = () => {
    const made = path.join(root, String(copies++));
    fs.mkdirSync(made);
    return made;
  };
  let dir = newDir();
  let store = openStore(dir, { maxPendingPerSession: cap, sessionCacheSize });
  const context = (what: string) => `${what} (seed ${seed}, cap ${cap}, session cache ${sessionCacheSize})`;

  const request = (sessionKey: string, text: string, contextKey: string | null, fails: boolean): AppendRequest<AppendOutcome> => ({
    event: { sessionKey, agentId: agentOf(sessionKey), text, mode: 'now', contextKey },
    ingress: {},
    complete: (outcome) => {
      if (fails) throw new Error('complete failed');
      return outcome;
    },
  });

  /** One batch: calls made in one tick share a commit; their answers are checked in call order. */
  async function batch(): Promise<void> {
    const checks: Array<() => Promise<void>> = [];
    for (let n = 1 + Math.floor(random() * 12); n > 0; n--) {
      const key = pick(KEYS);
      const kind = random();
      if (kind < 0.6) checks.push(append(key, pick(['a', 'b', 'c', 'd']), pick([null, null, 'x', 'y']), random() < 0.1));
      else if (kind < 0.75) checks.push(ack(key, Math.floor(random() * (session(key).lastSeq + 3))));
      else if (kind < 0.85) checks.push(drain(key, 1 + Math.floor(random() * 3)));
      else checks.push(peek(key));
    }
    for (const check of checks) await check();
  }

  function append(key: string, text: string, contextKey: string | null, fails: boolean): () => Promise<void> {
    const answer = settle(store.append(request(key, text, contextKey, fails)));
    return async () => {
      const settled = await answer;
      if (fails) return assert.ok('error' in settled, context('a failing complete rejects its append'));
      const result = answerOf(settled, context(`append to ${key}`));
      if (result.status !== 'stored') throw new Error(context(`append to ${key} answered ${result.status}`));
      const { outcome } = result;
      const s = session(key);
      const newest = s.pending.at(-1);
      if (newest && newest.text === text && newest.contextKey === contextKey) {
        assert.equal([outcome.status, outcome.seq, outcome.depth], ['deduplicated', newest.seq, s.pending.length], context(`dedupe in ${key}`));
        return;
      }
      const at = contextKey === null ? -1 : s.pending.findIndex((event) => event.contextKey === contextKey);
      const replaced = at === -1 ? null : s.pending.splice(at, 1)[0]!;
      const seq = s.lastSeq + 1;
      const dropped = s.pending.splice(0, Math.max(0, s.pending.length + 1 - cap));
      assert.equal(
        { status: outcome.status, seq: outcome.seq, replaced: outcome.replaced, dropped: outcome.dropped, depth: outcome.depth },
        {
          status: replaced ? 'replaced' : 'queued',
          seq,
          replaced: replaced && { eventId: replaced.eventId, seq: replaced.seq },
          dropped: dropped.map((event) => ({ eventId: event.eventId, seq: event.seq })),
          depth: s.pending.length + 1,
        },
        context(`append to ${key}`),
      );
      s.lastSeq = seq;
      s.lastEventAt = outcome.storedAt;
      s.pending.push({ seq, eventId: outcome.eventId, storedAt: outcome.storedAt, text, contextKey });
    };
  }

  function ack(key: string, seq: number): () => Promise<void> {
    const answer = settle(store.ack(key, seq, {}));
    return async () => {
      const result = answerOf(await answer, context(`ack of ${key}`));
      const s = session(key);
      if (seq > s.lastSeq) return assert.equal(result, { status: 'out-of-range', lastSeq: s.lastSeq }, context(`ack of ${key}`));
      const before = s.pending.length;
      s.pending = s.pending.filter((event) => event.seq > seq);
      assert.equal(result, { status: 'acked', acked: before - s.pending.length, depth: s.pending.length, lastSeq: s.lastSeq }, context(`ack of ${key}`));
    };
  }

  function drain(key: string, limit: number): () => Promise<void> {
    const answer = settle(store.drain(key, { limit }, {}));
    return async () => {
      const result = answerOf(await answer, context(`drain of ${key}`));
      const s = session(key);
      const taken = s.pending.splice(0, limit);
      assert.equal([result.events.map((event) => event.seq), result.depth], [taken.map((event) => event.seq), s.pending.length], context(`drain of ${key}`));
    };
  }

  function peek(key: string): () => Promise<void> {
    const answer = settle(store.peek(key, { limit: 10 }));
    return async () => {
      const result = answerOf(await answer, context(`peek of ${key}`));
      assert.equal(result.events.map((event) => event.seq), session(key).pending.slice(0, 10).map((event) => event.seq), context(`peek of ${key}`));
    };
  }

  async function checkAgainstModel(opened: SqliteEventStore, what: string): Promise<void> {
    const withPending = [...model].filter(([, s]) => s.pending.length > 0);
    const expected = withPending
      .map(([sessionKey, s]) => {
        const { lastSeq, lastEventAt, pending } = s;
        return { sessionKey, pending: pending.length, lastSeq, lastEventAt, oldestPendingAt: pending[0]!.storedAt };
      })
      .sort((a, b) => b.pending - a.pending || (a.sessionKey < b.sessionKey ? -1 : 1));
    const { sessions } = await opened.listSessions({ limit: 100 });
    assert.equal(
      sessions.map(({ sessionKey, pending, lastSeq, lastEventAt, oldestPendingAt }) => ({ sessionKey, pending, lastSeq, lastEventAt, oldestPendingAt })),
      expected,
      context(`${what}: listed sessions`),
    );
    const count = (agent?: string) => {
      const mine = withPending.filter(([key]) => agent === undefined || agentOf(key) === agent);
      return { sessions: mine.length, pending: mine.reduce((sum, [, s]) => sum + s.pending.length, 0) };
    };
    assert.equal(await opened.stats(), count(), context(`${what}: stats`));
    assert.equal(await opened.stats('other'), count('other'), context(`${what}: stats of an agent`));
    const mainKeys = withPending.map(([key]) => key).filter((key) => agentOf(key) === 'main');
    assert.equal(await opened.pendingSessionKeys('main'), mainKeys.sort(), context(`${what}: keys`));
    assert.equal(await opened.lastSeqs(KEYS), KEYS.map((key) => session(key).lastSeq), context(`${what}: last seqs`));
    for (const key of KEYS) {
      const read = await opened.peek(key, { limit: 10 });
      const { pending } = session(key);
      assert.equal([read.events.map((event) => event.seq), read.depth], [pending.map((event) => event.seq), pending.length], context(`${what}: ${key}`));
    }
  }

  try {
    for (let round = 0; round < ROUNDS; round++) {
      await batch();
      if (random() >= 0.3) continue;
      // Every call above has settled, so its commit is in the files: a crash now leaves these copies.
      const crashed = newDir();
      for (const suffix of ['', '-wal']) {
        const file = path.join(dir, DATA_FILES.database + suffix);
        if (fs.existsSync(file)) fs.copyFileSync(file, path.join(crashed, DATA_FILES.database + suffix));
      }
      const reopened = openStore(crashed, { maxPendingPerSession: cap, sessionCacheSize });
      await checkAgainstModel(reopened, `reopened after round ${round}`);
      if (random() < 0.5) {
        await store.close();
        store = reopened;
        dir = crashed;
      } else {
        await reopened.close();
      }
    }
    await checkAgainstModel(store, 'at the end');
  } finally {
    await store.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

for (const seed of SEEDS) {
  test(`seed ${seed}: every answer, and every store reopened from a crash, as the model says`, () => run(seed));
}

test.run();
