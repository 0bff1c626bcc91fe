/**
 * How many bytes read answers may carry, so that what a client can ask for at once is bounded
 * however it asks. Reads are the answers that grow with what is stored: session.peek and
 * session.drain (events), session.list (sessions), event.trace (steps) and token.list; and rpc.discover,
 * ~40 KB whatever is stored, which a client could otherwise ask for a thousand times at once. An item is counted as
 * what it adds to an answer: its JSON, not its text (escaping makes control characters six bytes
 * each, and an event's route repeats the key's parts).
 *
 * Per frame: a frame is one request or a batch of up to MAX_BATCH_LENGTH, and its reads share one
 * budget of MAX_READ_BYTES, so a batch of reads answers no more than a single read may. Per read,
 * a batch of a hundred peeks answered ~200 MiB in one frame, and a few such frames exhausted the
 * gateway's heap; a batch of drains consumed events in an answer too large for the client to
 * receive (MAX_CLIENT_FRAME_BYTES), and so could one drain of a thousand events whose text was
 * mostly escapes, while only their text was counted; a batch of lists of long keys answered 65 MB.
 *
 * Per connection: the frames of one connection also share a pool of MAX_READ_BYTES_IN_FLIGHT,
 * from the read until the answer is written to the socket. A client may have
 * MAX_IN_FLIGHT_PER_CONNECTION frames in flight, and the store runs the reads queued together in
 * one go: 1,024 peeks read 2 GiB before the first was answered, and the gateway's memory went past
 * 3 GiB for one connection. Given back only once written, the pool also bounds what waits in the
 * gateway for a client that reads slowly, or not at all.
 *
 * A read that finds too little left answers fewer items, or none, and says so (`more`; a trace's
 * `omitted`): the caller reads again. There is no exception for the first item: a frame's answer
 * must fit a client's frames whatever it holds. A read alone in its frame, while the connection's
 * other answers are written, still always answers one: the largest item (an event of
 * MAX_TEXT_BYTES of control characters, ~390 KiB as JSON) fits MAX_READ_BYTES and the room left by
 * a frame short of hundreds of KiB. In a batch of many requests, whose room is smaller, an event
 * that large is answered only to a read sent alone.
 *
 * Per answer frame: a frame's reads also take no more than its answer has room for within
 * MAX_FRAME_BYTES (see fitAnswerFrame). Clients refuse larger frames (Python's `websockets` at
 * 1 MiB by default), and a drain answered in a frame its client refuses consumed events that
 * never arrived.
 */
import { ANSWER_RESERVE_BYTES, MAX_FRAME_BYTES, MAX_READ_BYTES, MAX_READ_BYTES_IN_FLIGHT } from '../protocol/constants.js';
import type { EventRecord, SessionRecord, TokenRecord, TraceEntry } from './types.js';

/**
 * What a stored event's JSON holds beyond its record's: the route's member names and nulls, and
 * the time as an ISO string instead of a number (src/routing/route-event.ts toStoredEvent).
 */
const STORED_EVENT_OVERHEAD = 256;

/** A listed session's member names, its two counts and its two times as ISO strings. */
const LISTED_SESSION_OVERHEAD = 160;

/** A trace step's member names, its step's name and its time as an ISO string. */
const TRACE_STEP_OVERHEAD = 96;

/** A listed token's member names, its scopes and its two times as ISO strings. */
const LISTED_TOKEN_OVERHEAD = 160;

/** Bytes left to a connection's frames, from their reads until their answers are written. */
export interface ReadPool {
  bytes: number;
}

export interface ReadBudget {
  /** Bytes left to this frame's reads. */
  bytes: number;
  /** Bytes they took, to give back to the pool once the answer is written. */
  taken: number;
  /** The connection's pool it also takes from; none for a lone request (HTTP). */
  readonly pool: ReadPool | undefined;
}

export function readPool(): ReadPool {
  return { bytes: MAX_READ_BYTES_IN_FLIGHT };
}

/** A fresh budget, for one frame; taking from `pool` as well, when given. */
export function readBudget(pool?: ReadPool): ReadBudget {
  return { bytes: MAX_READ_BYTES, taken: 0, pool };
}

/**
 * Leaves the reads of a frame of `frameBytes` holding `requests` no more than its answer has room
 * for within MAX_FRAME_BYTES, what a client that takes frames of that size (Python's `websockets`
 * by default) can receive: after ANSWER_RESERVE_BYTES for each request's own answer, and what its
 * answers may repeat of the frame: a batch's, three times its bytes (ids; a routing result names
 * its key three times); a lone request's, once (its id, a read's key). Three times for a lone read
 * left a read with an id of a few hundred KiB no room for any event, answered with `more` for ever
 * (QA). Called before any of the frame's requests runs.
 */
export function fitAnswerFrame(budget: ReadBudget, frameBytes: number, requests: number): void {
  const repeated = requests === 1 ? frameBytes : 3 * frameBytes;
  budget.bytes = Math.min(budget.bytes, MAX_FRAME_BYTES - repeated - requests * ANSWER_RESERVE_BYTES);
}

/** At most what the event adds to an answer: its record's JSON, the key once more for the route. */
export function eventBytes(event: EventRecord): number {
  return Buffer.byteLength(JSON.stringify(event)) + Buffer.byteLength(JSON.stringify(event.sessionKey)) + STORED_EVENT_OVERHEAD;
}

/** At most what a session adds to session.list's answer: its key and agent, numbers and two times. */
export function sessionBytes(session: Pick<SessionRecord, 'sessionKey' | 'agentId'>): number {
  return Buffer.byteLength(JSON.stringify(session.sessionKey)) + Buffer.byteLength(JSON.stringify(session.agentId)) + LISTED_SESSION_OVERHEAD;
}

/** At most what a step adds to event.trace's answer: its detail, its name and its time. */
export function traceStepBytes(entry: TraceEntry): number {
  return Buffer.byteLength(JSON.stringify(entry.detail)) + TRACE_STEP_OVERHEAD;
}

/** At most what a token adds to token.list's answer: its id, name and agent, scopes and times. */
export function tokenBytes(token: Pick<TokenRecord, 'tokenId' | 'name' | 'agentId'>): number {
  return Buffer.byteLength(JSON.stringify([token.tokenId, token.name, token.agentId])) + LISTED_TOKEN_OVERHEAD;
}

/** The longest prefix of `items` that fits what is left of `budget`, taken from it. */
export function takeWithinBudget<T>(items: T[], budget: ReadBudget, sizeOf: (item: T) => number): T[] {
  const left = Math.min(budget.bytes, budget.pool?.bytes ?? Number.POSITIVE_INFINITY);
  let bytes = 0;
  let count = 0;
  for (; count < items.length; count++) {
    const next = bytes + sizeOf(items[count]!);
    if (next > left) break;
    bytes = next;
  }
  charge(budget, bytes);
  return count === items.length ? items : items.slice(0, count);
}

/**
 * Takes `bytes` from the budget whatever is left: for what an answer carries in any case (a
 * trace's first and last steps). What is left may go below zero; later reads then get nothing.
 */
export function charge(budget: ReadBudget, bytes: number): void {
  budget.bytes -= bytes;
  budget.taken += bytes;
  if (budget.pool) budget.pool.bytes -= bytes;
}
