/**
 * What the gateway's thread and the store's worker thread say to each other (see WorkerEventStore
 * and store-worker.ts), and how store errors cross between them. Structured clone keeps an error's
 * message but not its class, its code or its SQLite cause, and the server tells errors apart by
 * class (StoreUnavailableError answers STORE_UNAVAILABLE, StoreClosedError SHUTTING_DOWN).
 */
import Database from 'better-sqlite3';
import type { CommitMetrics } from './commit-queue.js';
import { StoreClosedError, StoreLockedError, StoreOpenError, StoreUnavailableError } from './errors.js';
import type { AppendOutcome, NewEvent, StoreOptions, TokenRecord, TraceDetail, TraceEntry } from './types.js';

/** Given to the worker at start: where the database is and how to run it. */
export interface WorkerSetup {
  file: string;
  options: Omit<StoreOptions, 'onBackgroundError'>;
  /** One Int32: the worker waits on it for a routing result to be built (see CompleteReply). */
  signal: SharedArrayBuffer;
}

/** An append as it crosses: the request without its `complete` callback, which stays behind. */
export interface AppendArgs {
  event: NewEvent;
  ingress: TraceDetail;
  idempotency?: { key: string; fingerprint: string };
}

/** Every call the worker answers, by method name: its arguments. */
export interface StoreCalls {
  append: [AppendArgs];
  peek: [sessionKey: string, options: { after?: number; limit: number }];
  drain: [sessionKey: string, options: { after?: number; limit: number }];
  listSessions: [options: { agentId?: string; limit: number }];
  stats: [agentId?: string];
  ack: [sessionKey: string, seq: number, detail: TraceDetail];
  pendingSessionKeys: [agentId: string];
  trace: [eventId: string];
  listTokens: [];
  createToken: [record: TokenRecord];
  revokeToken: [tokenId: string];
  storeMetrics: [];
  close: [];
}

export type StoreCall = { [M in keyof StoreCalls]: { id: number; method: M; args: StoreCalls[M] } }[keyof StoreCalls];

/**
 * From the gateway's thread, one message per turn of its event loop: calls and traces in the
 * order they were made, since a trace recorded before a call must commit in a batch before it.
 */
export type ToWorker = Array<StoreCall | { method: 'recordTrace'; entries: TraceEntry[] }>;

/** An append's answer before the gateway's thread has built its result (see WorkerEventStore). */
export type WorkerAppendResult =
  | { status: 'stored'; outcome: AppendOutcome; result?: unknown }
  | { status: 'duplicate'; result: unknown }
  | { status: 'conflict' };

export type Settled = { id: number; value: unknown } | { id: number; error: WireError };

/** From the worker, on the main port. */
export type FromWorker =
  | { kind: 'ready' }
  | { kind: 'open-failed'; error: WireError }
  | { kind: 'settled'; settled: Settled[] }
  | { kind: 'background-error'; error: WireError };

/** On the completion port: an append with an idempotency key needs its result inside its transaction. */
export interface CompleteRequest {
  id: number;
  outcome: AppendOutcome;
}

export type CompleteReply = { result: unknown } | { error: WireError };

export type { CommitMetrics };

/** An error as it crosses a thread: what is needed to rebuild it as the same class. */
export interface WireError {
  name: string;
  message: string;
  stack: string | undefined;
  /** Own enumerable properties: code, path, sqliteCode. */
  fields: Record<string, unknown>;
  cause: WireError | undefined;
}

export function toWire(error: unknown): WireError {
  if (!(error instanceof Error)) {
    return { name: 'Error', message: String(error), stack: undefined, fields: {}, cause: undefined };
  }
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) fields[key] = value;
  }
  return { name: error.name, message: error.message, stack: error.stack, fields, cause: error.cause === undefined ? undefined : toWire(error.cause) };
}

/** The classes an error is rebuilt as, by name; any other becomes a plain Error with the same message. */
const CLASSES: Record<string, { prototype: Error }> = {
  StoreClosedError,
  StoreLockedError,
  StoreOpenError,
  StoreUnavailableError,
  SqliteError: Database.SqliteError,
  RangeError,
  TypeError,
};

export function fromWire(wire: WireError): Error {
  const error = new Error(wire.message, wire.cause === undefined ? undefined : { cause: fromWire(wire.cause) });
  const prototype = CLASSES[wire.name]?.prototype;
  if (prototype) Object.setPrototypeOf(error, prototype);
  error.name = wire.name;
  if (wire.stack !== undefined) error.stack = wire.stack;
  return Object.assign(error, wire.fields);
}
