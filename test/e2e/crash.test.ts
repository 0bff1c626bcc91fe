/**
 * A crash that counts: clients fire system.event concurrently into several sessions, the gateway
 * process is SIGKILLed at a random moment with calls in flight, and after a restart on the same
 * data dir every event's fate is checked against what the clients were told:
 *
 * - answered with a result: stored exactly once, with the eventId and seq of the answer, in seq order
 * - refused with an error: not stored
 * - in flight at the kill (no answer): stored at most once
 *
 * Then the unanswered ones are resubmitted with the same idempotency key: each one that the crash
 * had already committed must come back `duplicate: true`, the others are stored now, and in the
 * end every event is stored exactly once.
 *
 * The kill point is drawn from a seed printed with the counts; SB_CRASH_SEED=<n> replays it (as
 * far as timing allows). scripts/crash-test.ts is the large version (10,000 events, several kills).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CrashWorkload,
  cleanup,
  openCallSocket,
  openRaw,
  resultOf,
  seededRandom,
  startGatewayProcess,
  waitUntil,
  type CallSocket,
  type CrashCounts,
  type GatewayProcess,
} from '../helpers/gateway.js';

const test = suite('e2e: crash (SIGKILL with calls in flight)');

test.after(async () => {
  await cleanup();
});

const SEED = process.env['SB_CRASH_SEED'] === undefined ? Date.now() % 2_147_483_647 : Number(process.env['SB_CRASH_SEED']);
const EVENTS = 400;

function line(counts: CrashCounts): string {
  return (
    `answered ${counts.answered}, refused ${counts.refused}, present ${counts.present}, lost ${counts.lost}, ` +
    `duplicated ${counts.duplicated}, unanswered ${counts.unanswered} (present ${counts.unansweredPresent})`
  );
}

function assertNothingBroken(counts: CrashCounts, problems: string[], context: string): void {
  assert.equal(problems, [], `${context} (seed ${SEED})`);
  assert.is(counts.lost, 0, 'lost: answered but not stored');
  assert.is(counts.duplicated, 0, 'duplicated: stored more than once');
  assert.is(counts.mismatched, 0, 'mismatched: stored with another eventId or seq than answered');
  assert.is(counts.refusedPresent, 0, 'refused but stored');
  assert.is(counts.unknown, 0, 'stored but never sent');
}

test('SIGKILL at a random moment: answered events survive exactly once, refused ones are absent; resubmission completes the rest', async () => {
  const random = seededRandom(SEED);
  const workload = new CrashWorkload({ events: EVENTS, clients: 4, sessions: 4, inFlightPerClient: 8 });
  // Between 10% and 85% of the way: the kill always lands mid-stream, with calls in flight.
  const killAt = Math.floor(EVENTS * (0.1 + 0.75 * random()));

  const first = await startGatewayProcess();
  const { inFlightAtKill, answeredAtKill } = await workload.round(first, { resubmit: false, killAtAnswered: killAt });
  assert.is(first.process.signalCode, 'SIGKILL', 'the gateway was killed mid-stream');
  assert.ok(inFlightAtKill !== null && inFlightAtKill > 0, `calls were in flight at the kill (${inFlightAtKill})`);

  const second = await startGatewayProcess({ dataDir: first.dataDir });
  const afterCrash = await workload.verify(second);
  console.log(`  crash (seed ${SEED}): killed after ${answeredAtKill} answers with ${inFlightAtKill} calls in flight: ${line(afterCrash.counts)}`);
  assertNothingBroken(afterCrash.counts, afterCrash.problems, 'after the crash');
  assert.ok(afterCrash.counts.answered >= answeredAtKill!, 'every answer before the kill was counted');
  assert.is(afterCrash.counts.present, afterCrash.counts.answered + afterCrash.counts.unansweredPresent);
  assert.is(afterCrash.pending, afterCrash.counts.present, 'gateway.status pending is exactly the stored events');

  // Resubmit what got no answer (same idempotency key), and send what was never sent.
  const requeued = workload.requeueUnanswered();
  assert.is(requeued, afterCrash.counts.unanswered);
  await workload.round(second, { resubmit: true });
  assert.is(workload.remaining, 0, 'every event was sent and answered');
  const final = await workload.verify(second);
  console.log(`  after resubmitting ${requeued} unanswered: ${line(final.counts)}, ${final.counts.duplicateAnswers} found already stored`);
  assertNothingBroken(final.counts, final.problems, 'after resubmission');
  assert.is(final.counts.answered, EVENTS);
  assert.is(final.counts.present, EVENTS);
  // An event the crash had committed without answering is answered now as a duplicate of itself.
  assert.is(final.counts.duplicateAnswers, afterCrash.counts.unansweredPresent);
  assert.is(await second.stop('SIGTERM'), 0, `clean exit\nstderr: ${second.stderr()}`);
});

interface ListedSession {
  sessionKey: string;
  pending: number;
  lastSeq: number;
}

test('SIGKILL at the pending cap: each session lists exactly its pending events, which are its newest, and seq goes on', async () => {
  // Every append at the cap drops its session's oldest event, and leaves the session's row to be
  // written later: after a crash the row is brought up to date from the events themselves.
  const cap = 5;
  const sessions = [1, 2, 3, 4].map((n) => `agent:main:telegram:direct:U${n}`);
  const lastAnswered = new Map(sessions.map((key) => [key, 0]));

  async function checkRows(gateway: GatewayProcess, context: string): Promise<void> {
    const raw = await openRaw(gateway.url, gateway.token);
    const { sessions: listed } = resultOf<{ sessions: ListedSession[] }>(await raw.call('session.list', { limit: 100 }));
    for (const sessionKey of sessions) {
      const row = listed.find((session) => session.sessionKey === sessionKey)!;
      const { events } = resultOf<{ events: Array<{ seq: number }> }>(await raw.call('session.peek', { sessionKey, limit: 100 }));
      const newest = Array.from({ length: Math.min(cap, row.lastSeq) }, (_, i) => row.lastSeq - Math.min(cap, row.lastSeq) + 1 + i);
      assert.equal(events.map((event) => event.seq), newest, `${context}: ${sessionKey} holds its newest events`);
      assert.is(row.pending, events.length, `${context}: ${sessionKey} lists what it holds`);
      assert.ok(row.lastSeq >= lastAnswered.get(sessionKey)!, `${context}: ${sessionKey} keeps every seq answered`);
      const next = resultOf<{ queue: { seq: number } }>(await raw.call('system.event', { text: `${context}: next`, sessionKey }));
      assert.is(next.queue.seq, row.lastSeq + 1, `${context}: ${sessionKey} goes on from its last seq`);
      lastAnswered.set(sessionKey, next.queue.seq);
    }
    raw.close();
  }

  async function keepCalling(socket: CallSocket, worker: number, answered: { count: number }): Promise<void> {
    for (let n = 0; !socket.isClosed; n++) {
      const sessionKey = sessions[(worker + n) % sessions.length]!;
      const outcome = await socket.call('system.event', { text: `worker ${worker} call ${n} ${Math.random()}`, sessionKey });
      if (outcome.kind !== 'answered') continue;
      const { seq } = resultOf<{ queue: { seq: number } }>(outcome.response).queue;
      lastAnswered.set(sessionKey, Math.max(lastAnswered.get(sessionKey)!, seq));
      answered.count++;
    }
  }

  let dataDir: string | undefined;
  for (let kill = 1; kill <= 2; kill++) {
    const gateway = await startGatewayProcess({ dataDir, args: ['--max-pending', String(cap)] });
    if (dataDir !== undefined) await checkRows(gateway, `after kill ${kill - 1}`);
    dataDir = gateway.dataDir;
    const sockets = await Promise.all([0, 1].map(() => openCallSocket(gateway.url, gateway.token)));
    const answered = { count: 0 };
    const workers = sockets.flatMap((socket, s) => Array.from({ length: 8 }, (_, i) => keepCalling(socket, s * 8 + i, answered)));
    await waitUntil(() => answered.count >= 300, 'answers before the kill');
    await gateway.kill9();
    await Promise.all(workers);
  }
  const last = await startGatewayProcess({ dataDir, args: ['--max-pending', String(cap)] });
  await checkRows(last, 'after kill 2');
  assert.is(await last.stop('SIGTERM'), 0, `clean exit\nstderr: ${last.stderr()}`);
});

test.run();
