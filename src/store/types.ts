/**
 * The durable event store, behind one small interface so another backend can follow SQLite.
 * Sessions are identified by canonical session keys; the store never parses them.
 */
import type { EventMode, QueueOutcome } from '../protocol/schemas.js';

/** An event as stored. Times are milliseconds since the epoch. */
export interface EventRecord {
  eventId: string;
  sessionKey: string;
  seq: number;
  text: string;
  mode: EventMode;
  contextKey: string | null;
  storedAt: number;
}

export interface NewEvent {
  sessionKey: string;
  agentId: string;
  text: string;
  mode: EventMode;
  contextKey: string | null;
}

/** What happened in the session's queue, plus when: the store's half of the routing result. */
export interface AppendOutcome extends QueueOutcome {
  eventId: string;
  storedAt: number;
}

export interface AppendRequest<R> {
  event: NewEvent;
  /** When set, a repeat of the key returns the first result instead of storing again. */
  idempotency?: { key: string; fingerprint: string };
  /**
   * Builds the caller's result from the queue outcome. Runs inside the same transaction that
   * stores the event, so the idempotency record holds exactly what the first caller was answered.
   * Must be synchronous and must not throw.
   */
  complete: (outcome: AppendOutcome) => R;
}

export type AppendResult<R> =
  | { status: 'stored'; result: R; outcome: AppendOutcome }
  /** The idempotency key was seen before with the same fingerprint: the first call's result. */
  | { status: 'duplicate'; result: R }
  /** The idempotency key was seen before with a different fingerprint. */
  | { status: 'conflict' };

export interface ReadOptions {
  /** Only events with seq greater than this. */
  after?: number;
  limit: number;
}

export interface ReadResult {
  events: EventRecord[];
  /** Pending events left in the session after the call. */
  depth: number;
  /** More events matched than `limit`. */
  more: boolean;
}

export interface SessionRecord {
  sessionKey: string;
  agentId: string;
  pending: number;
  lastSeq: number;
  oldestPendingAt: number | null;
  lastEventAt: number;
}

export interface StoreStats {
  sessions: number;
  pending: number;
}

export interface EventStore {
  /** Stores an event; resolves only once it is durable on disk. */
  append<R>(request: AppendRequest<R>): Promise<AppendResult<R>>;
  /** Pending events, oldest first; consumes nothing. */
  peek(sessionKey: string, options: ReadOptions): Promise<ReadResult>;
  /** Pending events, oldest first; the returned events are consumed durably before it resolves. */
  drain(sessionKey: string, options: ReadOptions): Promise<ReadResult>;
  /** Sessions with pending events, most pending first. */
  listSessions(options: { agentId?: string; limit: number }): Promise<{ sessions: SessionRecord[]; more: boolean }>;
  stats(): Promise<StoreStats>;
  /** Waits for queued work to commit, then closes. Further calls reject. */
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Oldest pending events beyond this count are dropped (see DEFAULT_MAX_PENDING_PER_SESSION). */
  maxPendingPerSession: number;
}
