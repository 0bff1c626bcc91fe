/**
 * How much event text read answers may carry, so that what a client can ask for at once is bounded
 * however it asks.
 *
 * Per frame: a frame is one request or a batch of up to MAX_BATCH_LENGTH, and its session.peek and
 * session.drain answers share one budget of MAX_READ_TEXT_BYTES, so a batch of reads answers no
 * more than a single read may. Per read, a batch of a hundred peeks answered ~200 MiB in one
 * frame, and a few such frames exhausted the gateway's heap; a batch of drains consumed events in
 * an answer too large for the client to receive (MAX_CLIENT_FRAME_BYTES).
 *
 * Per connection: the frames of one connection that are not answered yet also share a pool of
 * MAX_READ_TEXT_IN_FLIGHT. A client may have MAX_IN_FLIGHT_PER_CONNECTION frames in flight, and
 * the store runs the reads queued together in one go: 1,024 peeks read 2 GiB before the first was
 * answered, and the gateway's memory went past 3 GiB for one connection.
 *
 * A read that finds too little left answers fewer events, or none, with `more`: the caller reads
 * again. A read alone (nothing taken from its frame's budget or its pool) answers at least one
 * event, so one request always makes progress.
 */
import { MAX_READ_TEXT_BYTES, MAX_READ_TEXT_IN_FLIGHT } from '../protocol/constants.js';

/** Text bytes left to a connection's frames in flight. */
export interface ReadPool {
  textBytes: number;
}

export interface ReadBudget {
  /** Text bytes (UTF-8) left to this frame. */
  textBytes: number;
  /** The connection's pool it also takes from; none for a lone request (HTTP). */
  readonly pool: ReadPool | undefined;
}

export function readPool(): ReadPool {
  return { textBytes: MAX_READ_TEXT_IN_FLIGHT };
}

/** A fresh budget, for one frame; taking from `pool` as well, when given. */
export function readBudget(pool?: ReadPool): ReadBudget {
  return { textBytes: MAX_READ_TEXT_BYTES, pool };
}

/** What the frame took from its pool, to give back once its answer is sent. */
export function taken(budget: ReadBudget): number {
  return MAX_READ_TEXT_BYTES - budget.textBytes;
}

/** The longest prefix of `events` whose texts fit what is left of `budget`, taken from it. */
export function takeWithinBudget<E extends { text: string }>(events: E[], budget: ReadBudget): E[] {
  const { pool } = budget;
  const alone = budget.textBytes === MAX_READ_TEXT_BYTES && (pool === undefined || pool.textBytes === MAX_READ_TEXT_IN_FLIGHT);
  const left = Math.min(budget.textBytes, pool?.textBytes ?? Number.POSITIVE_INFINITY);
  let bytes = 0;
  let count = 0;
  for (; count < events.length; count++) {
    const next = bytes + Buffer.byteLength(events[count]!.text, 'utf8');
    if (next > left && !(count === 0 && alone)) break;
    bytes = next;
  }
  budget.textBytes -= bytes;
  if (pool) pool.textBytes -= bytes;
  return count === events.length ? events : events.slice(0, count);
}
