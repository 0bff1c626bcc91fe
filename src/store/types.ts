/**
 * The durable event store, behind one small interface so another backend can follow SQLite.
 * Sessions are identified by canonical session keys; the store never parses them.
 */
import type { EventMode, QueueOutcome, TokenScope } from '../protocol/schemas.js';
import type { WriteHealth } from './commit-queue.js';
import type { DiskShortage } from './free-space.js';
import type { ReadBudget } from './read-budget.js';

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
  /** Who handed the event in; recorded as the trace's "accepted" step. */
  ingress: TraceDetail;
  /** When set, a repeat of the key returns the first result instead of storing again. */
  idempotency?: { key: string; fingerprint: string };
  /**
   * Builds the caller's result from the queue outcome. Runs inside the same transaction that
   * stores the event, so the idempotency record holds exactly what the first caller was answered.
   * Must be synchronous and must not throw.
   */
  complete: (outcome: AppendOutcome) => R;
  /**
   * What the trace's "stored" step says of the result, beside the queue's own outcome (sessionKey,
   * seq, status: keys it must not use): the routing puts its wake decision there, so the trace of
   * an event that woke no one says why. Runs after `complete`, before the event's row is written;
   * same rules.
   */
  storedDetail?: (result: R) => TraceDetail;
}

export type AppendResult<R> =
  | { status: 'stored'; result: R; outcome: AppendOutcome }
  /** The idempotency key was seen before with the same fingerprint: the first call's result. */
  | { status: 'duplicate'; result: R }
  /** The idempotency key was seen before with a different fingerprint. */
  | { status: 'conflict' }
  /** Nothing was stored: the data dir's disk has less free space than the store keeps (see FreeSpaceGuard). */
  | ({ status: 'disk-full' } & DiskShortage);

export interface ReadOptions {
  /** Only events with seq greater than this. */
  after?: number;
  limit: number;
  /**
   * The bytes of events the read may return, shared with the other reads answered in the same
   * frame (see ReadBudget). Without it, the read has a budget of its own.
   */
  budget?: ReadBudget;
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

/** Free-form JSON facts about one step of an event's life (ingress, connection id, ...). */
export type TraceDetail = Record<string, string | number | boolean | null>;

export type TraceStep =
  | 'accepted'
  | 'stored'
  | 'deduplicated'
  | 'replaced'
  | 'dropped'
  | 'wake'
  | 'delivered'
  | 'acked'
  | 'drained';

export interface TraceEntry {
  eventId: string;
  /** A `wake` step is written only while its event is pending (see recordTrace). */
  step: TraceStep;
  at: number;
  detail: TraceDetail;
}

/** An event's trace as answered: its acceptance, the steps that fit, and its last step. */
export interface TracedEvent {
  steps: TraceEntry[];
  /** Steps left out before the last one: past MAX_TRACE_STEPS, or past the read budget. */
  omitted: number;
}

export interface ListOptions {
  /** One agent's sessions only. */
  agentId?: string;
  limit: number;
  /** Only the sessions after this one in the list's order (most pending first, then by key). */
  after?: SessionListPosition;
  /** As for reads (ReadOptions). */
  budget?: ReadBudget;
}

/** A place in the session list: a session's pending count and key, when it was listed. */
export interface SessionListPosition {
  pending: number;
  sessionKey: string;
}

export type AckResult =
  | { status: 'acked'; acked: number; depth: number; lastSeq: number }
  /** The seq is beyond the last one the session issued (0 for a session with no event yet). */
  | { status: 'out-of-range'; lastSeq: number };

export interface StoreStats {
  sessions: number;
  pending: number;
}

export interface EventStore {
  /** Stores an event; resolves only once it is durable on disk. */
  append<R>(request: AppendRequest<R>): Promise<AppendResult<R>>;
  /** Pending events, oldest first; consumes nothing. */
  peek(sessionKey: string, options: ReadOptions): Promise<ReadResult>;
  /**
   * Pending events, oldest first; the returned events are consumed durably before it resolves.
   * `detail` says who drained them, in their trace, as an ack's does.
   */
  drain(sessionKey: string, options: ReadOptions, detail: TraceDetail): Promise<ReadResult>;
  /** Sessions with pending events, most pending first. */
  listSessions(options: ListOptions): Promise<{ sessions: SessionRecord[]; more: boolean }>;
  /** Sessions with pending events and their events: all of them, or one agent's. */
  stats(agentId?: string): Promise<StoreStats>;
  /**
   * The free space on the data dir's disk, as last read (undefined when it cannot be told), the
   * room the store keeps, and whether appends are refused for want of it (telling onRoomAgain when
   * they were, and no longer are).
   */
  freeDisk(): { availableBytes: number | undefined; minFreeBytes: number; refusing: boolean };
  /** Whether writes go through, or since when they fail and why (see WriteHealth). */
  writeHealth(): WriteHealth;
  /** Consumes every pending event of the session with seq <= `seq`; records "acked" traces. */
  ack(sessionKey: string, seq: number, detail: TraceDetail): Promise<AckResult>;
  /** The last seq each session issued, in the order given; 0 for a session that never had an event. */
  lastSeqs(sessionKeys: readonly string[]): Promise<number[]>;
  /** Keys of the agent's sessions that have pending events (for replaying an agent subscription). */
  pendingSessionKeys(agentId: string): Promise<string[]>;
  /**
   * Drops, oldest first, what sessions hold past the cap, as an append at the cap does, each traced
   * as `dropped`: a store opened with a lower cap than its events were stored under. In slices,
   * each one commit, so no one operation grows with what is stored; appends in between drop their
   * own session's excess as at the cap (listing only the event each pushed out). Resolves with how
   * many events of how many sessions, and whether all were dropped: closing the store stops it.
   */
  dropOverCap(): Promise<{ events: number; sessions: number; finished: boolean }>;
  /**
   * Appends trace entries without waiting for them; they commit with the next batch. A `wake`
   * step of an event no longer pending by then (acked, drained, replaced, dropped) is left out.
   */
  recordTrace(entries: TraceEntry[]): void;
  /**
   * The recorded life of an event, oldest step first; no steps when the event is unknown. `budget`
   * as for reads (ReadOptions): without it, the trace has a budget of its own.
   */
  trace(eventId: string, budget?: ReadBudget): Promise<TracedEvent>;
  /**
   * Copies the whole store, as it is once the copy completes, into `file`, a new file (mode 0600)
   * that is a database of its own: what the data dir's switchboard.db of a stopped gateway would be.
   * Runs beside the store's work, which goes on; throws a BackupError for a file that exists or
   * cannot be written, leaving nothing of it.
   */
  backup(file: string): Promise<{ bytes: number }>;
  /** Stops every backup under way at its next step (it rejects with StoreClosedError), and refuses later ones: a shutdown has begun. */
  stopBackups(): void;
  /** Waits for queued work to commit, then closes. Further calls reject. */
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Oldest pending events beyond this count are dropped (see DEFAULT_MAX_PENDING_PER_SESSION). */
  maxPendingPerSession: number;
  /**
   * Told about failures of work nobody waits for: recordTrace's writes and trace pruning. Traces
   * are diagnostics, so such a failure loses traces, never events.
   * @default ignore them (a failed commit is also reported to the operations of its batch)
   */
  onBackgroundError?: (error: unknown) => void;
  /**
   * Told what its operator must know and no call reports: a close that could not fold the
   * write-ahead log back into the database, which must then be kept beside it.
   * @default ignore it
   */
  onWarning?: (message: string) => void;
  /**
   * Told when writes go through again after they failed (since `failedSince`, ms since the epoch).
   * @default ignore it
   */
  onWritesRecovered?: (failedSince: number) => void;
  /**
   * Told when new events are taken again after they were refused for want of room, or found to be
   * at open (see FreeSpaceGuard), with how much is free: seen at the next append, status read
   * (freeDisk), or checkpoint of an idle store.
   * @default ignore it
   */
  onRoomAgain?: (availableBytes: number | undefined) => void;
  /**
   * Told when opening brought the database of an older schema version to this one's: a one-way
   * step, after which a switchboard of the older schema cannot open it.
   * @default ignore it
   */
  onMigrated?: (fromSchema: number, toSchema: number) => void;
  /**
   * What the data dir's disk has free, in bytes. For tests, which cannot fill a disk at will.
   * @default availableBytes (statfs)
   */
  readFreeSpace?: (dir: string) => number | undefined;
  /**
   * How long an idempotency record answers repeats; older ones are pruned.
   * @default DEFAULT_IDEMPOTENCY_RETENTION_MS (24 h)
   */
  idempotencyRetentionMs?: number;
  /**
   * Bytes kept free on the data dir's file system: with less, appends are refused (see
   * FreeSpaceGuard). 0 refuses none.
   * @default DEFAULT_MIN_FREE_DISK_BYTES (64 MiB)
   */
  minFreeDiskBytes?: number;
  /**
   * Sessions whose state is kept in memory (see SESSION_CACHE_SIZE). For tests, which make it small
   * to turn the cache over often.
   * @default SESSION_CACHE_SIZE
   */
  sessionCacheSize?: number;
}

/** A scoped token as stored: never the secret, only its SHA-256. Times in ms since the epoch. */
export interface TokenRecord {
  tokenId: string;
  name: string | null;
  agentId: string;
  scopes: TokenScope[];
  hash: string;
  createdAt: number;
  revokedAt: number | null;
}

/** A revoke as stored: the token, and whether an earlier revoke had already revoked it. */
export interface TokenRevocation {
  /** The token as now stored; `revokedAt` is the first revocation's time. */
  record: TokenRecord;
  alreadyRevoked: boolean;
}

export interface TokenPageOptions {
  /** The tokens after this one (its id); from the first when absent. */
  after?: string;
  limit: number;
  /** As for reads (ReadOptions). */
  budget?: ReadBudget;
}

/** Scoped tokens, kept in the same database as the events they guard. */
export interface TokenStore {
  /** Every token ever created, revoked ones included, oldest first. */
  listTokens(): Promise<TokenRecord[]>;
  /**
   * A page of them, in the same order: at most `limit`, and what fits the budget; `more` when
   * others follow. Undefined when there is no token `after`.
   */
  tokenPage(options: TokenPageOptions): Promise<{ tokens: TokenRecord[]; more: boolean } | undefined>;
  /** Stores the token; returns it as stored: created after every token before it (`createdAt` moved on if need be). */
  createToken(record: TokenRecord): Promise<TokenRecord>;
  /**
   * Marks the token revoked, keeping the first revocation time when it already was; undefined when
   * there is no such token.
   */
  revokeToken(tokenId: string): Promise<TokenRevocation | undefined>;
}
