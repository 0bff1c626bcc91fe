/**
 * EventStore and TokenStore on SQLite (better-sqlite3). One connection, held exclusively for the life of the
 * gateway; every operation goes through the group-commit queue, so operations run one at a time,
 * in the order they were called, and settle only once committed.
 */
import { linkSync, lstatSync, renameSync, rmSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { createPrivateFile, makePrivateDir, resolvedPrivateDir } from '../config/private-files.js';
import { DEFAULT_IDEMPOTENCY_RETENTION_MS, DEFAULT_MIN_FREE_DISK_BYTES, MAX_REPLAYS_TRACED_PER_EVENT, MAX_TRACE_STEPS, TRACE_RETENTION_MS } from '../protocol/constants.js';
import { CommitQueue, MAX_WEIGHT_PER_COMMIT, observeAll, type CommitMetrics, type RunOptions, type WriteHealth } from './commit-queue.js';
import {
  BackupError,
  corruptStoreError,
  isCorruption,
  NativeModuleError,
  sqliteCode,
  StoreClosedError,
  StoreLockedError,
  StoreOpenError,
  StoreUnavailableError,
} from './errors.js';
import { FreeSpaceGuard, type DiskShortage } from './free-space.js';
import { IdleCheckpoint } from './idle-checkpoint.js';
import { newEventId } from './ids.js';
import { migrate, SCHEMA_VERSION } from './migrations.js';
import { databaseFileGuard } from './file-guard.js';
import { PendingIndex, type PendingRef } from './pending-index.js';
import { charge, eventBytes, readBudget, sessionBytes, takeWithinBudget, tokenBytes, traceStepBytes, type ReadBudget } from './read-budget.js';
import { NEWEST_TEXT_CACHE_LIMIT, SESSION_CACHE_SIZE, SessionCache, type NewestEvent, type SessionRow, type SessionState } from './session-cache.js';
import type {
  AckResult,
  AppendOutcome,
  AppendRequest,
  AppendResult,
  EventRecord,
  EventStore,
  ListOptions,
  ReadOptions,
  ReadResult,
  SessionListPosition,
  SessionRecord,
  StoreOptions,
  StoreStats,
  TokenPageOptions,
  TokenRecord,
  TokenRevocation,
  TokenStore,
  TraceDetail,
  TraceEntry,
  TracedEvent,
  TraceStep,
} from './types.js';

/**
 * How often old traces and idempotency records are pruned. With a week of trace retention and a
 * day of idempotency retention an hour's slack is noise, and each prune then has about an hour's
 * worth of rows to delete. Idempotency lookups ignore expired records themselves, so a record
 * that outlives its retention until the next prune only takes space.
 */
export const PRUNE_INTERVAL_MS = 60 * 60 * 1000;

/**
 * Most rows (traces and idempotency records together) one prune operation deletes; more are
 * deleted by further operations, in later batches. A prune after a long downtime could otherwise
 * hold one batch (and the event loop) for seconds. Idempotency keys are the callers' own, so each
 * deleted record dirties its own index pages: 1000 of them cost about what the batch's fsync does
 * (5000 took ~60 ms per batch).
 */
export const PRUNE_SLICE = 1000;

/**
 * WAL pages after which a commit copies them into the database file (a checkpoint). Under load
 * the same pages change in nearly every batch (each busy session's newest events, the right edges
 * of the indexes), and a checkpoint writes each changed page once however often it changed: at
 * SQLite's default of 1000 pages (4 MiB) it came every few batches; at 10000 it comes about a
 * tenth as often, and the gateway answered 8-16% more durable appends per second. The price is a
 * WAL of up to ~42 MiB on disk while the store is busy (a second without writes folds one of 4 MiB
 * or more back: see IdleCheckpoint), replayed at the next open after a crash.
 */
const WAL_AUTOCHECKPOINT_PAGES = 10_000;

/**
 * What the WAL file is cut back to when it starts over after a checkpoint; without a limit it
 * keeps the size of its largest ever batch (1000 events of 64 KiB are one 64 MiB commit). Above
 * WAL_AUTOCHECKPOINT_PAGES of 4 KiB pages with room for a batch on top, so a steady load never
 * cuts it: cutting it back to 4 MiB after every checkpoint made appends ~20% slower.
 */
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/** The WAL an idle store folds back and cuts (see IdleCheckpoint); SQLite's default checkpoint size. */
const IDLE_CHECKPOINT_MIN_WAL_BYTES = 4 * 1024 * 1024;

/**
 * While new events are refused for want of room, how often the store looks again when nothing
 * else makes it look (an append, a status read, a checkpoint): room an operator made is told even
 * while no one sends (operator QA: the start's warning was never followed by its all-clear).
 */
const ROOM_WATCH_MS = 1000;

/**
 * Pruning may be lost on power loss (the next prune redoes it), as trace rows may (diagnostics);
 * never anything an answer depends on. A slice weighs what a full batch of appends does.
 */
const PRUNE_OPTIONS: RunOptions = { durable: false, weight: () => PRUNE_SLICE };
const READ_ONLY: RunOptions = { readOnly: true };

/**
 * The step of the single trace row appends of schema 3 and 4 wrote for "accepted" and "stored",
 * with the JSON array [accepted detail, stored detail] as its detail; trace() returns it as those
 * two steps, as it does rows written as two steps before that. Appends no longer write it: see
 * Acceptance.
 */
const ACCEPTED_AND_STORED = 'accepted+stored';

/** A trace row's step: a TraceStep, or the row that stands for two of them. */
type TraceRowStep = TraceStep | typeof ACCEPTED_AND_STORED;

/**
 * An event's "accepted" and "stored" steps, which always come together and at the same time: the
 * JSON array [accepted detail, stored detail], and their time. An append writes them into the
 * event's row (events.accepted; the time is its stored_at), not into a trace row: every trace row
 * costs an insert into the table and its index. The step that removes the event (acked, drained,
 * replaced, dropped) carries them into its own trace row (trace.accepted, trace.accepted_at), so
 * an event costs one trace row in all, and they outlive it as the rest of its trace does.
 */
interface Acceptance {
  acceptedAt: number;
  /** JSON. */
  accepted: string;
}

/** Columns are NULL where the row carries no acceptance (Acceptance), and in rows written before schema 5. */
interface TraceRow {
  eventId: string;
  step: TraceRowStep;
  at: number;
  /** JSON. */
  detail: string;
  acceptedAt: number | null;
  accepted: string | null;
}

/** An event deleted from the queue: its trace so far goes on in the trace table. */
interface RemovedEvent {
  eventId: string;
  acceptedAt: number;
  /** NULL for events appended before schema 5: their acceptance is in a trace row already. */
  accepted: string | null;
}

/** Why the session queue dropped an event, as its "dropped" trace says. */
const DROPPED_REASON = 'session at its pending cap';

/** The step that takes events out of their session's queue, for their trace: when, and its detail (JSON). */
interface Removal {
  step: 'acked' | 'drained' | 'replaced' | 'dropped';
  at: number;
  detail: string;
}

// sessionKey is the key the caller asked by: events name their session by its id only.
const EVENT_COLUMNS =
  'event_id AS eventId, @sessionKey AS sessionKey, seq, text, mode, context_key AS contextKey, stored_at AS storedAt';

// The id finds each listed session's oldest pending event in the PendingIndex (see listSessions).
const SESSION_COLUMNS = `id, session_key AS sessionKey, agent_id AS agentId, pending, last_seq AS lastSeq,
  last_event_at AS lastEventAt`;

/** A sessions row as listed, before its oldest pending event's time is added. */
type ListedRow = Omit<SessionRecord, 'oldestPendingAt'> & { id: number };

/** A page of the session list: the sessions after a place in its order (most pending first, then by key). */
type ListPage = SessionListPosition & { limit: number };

/**
 * The page after a place in the list, of the sessions `where` picks: the rest of its count, then
 * the lower counts. Two searches of the index, each starting at its place: as one search (count
 * below, or equal and key after) SQLite walked every session of the count from its start, and a
 * page deep among 200,000 sessions of one pending event took 14 ms against 0.1 (review).
 */
function listPage(where: string): string {
  const columns = `${SESSION_COLUMNS} FROM sessions WHERE ${where} AND pending > 0`;
  return `SELECT * FROM (SELECT ${columns} AND pending = @pending AND session_key > @sessionKey ORDER BY session_key LIMIT @limit)
    UNION ALL
    SELECT * FROM (SELECT ${columns} AND pending < @pending ORDER BY pending DESC, session_key LIMIT @limit)
    ORDER BY pending DESC, sessionKey LIMIT @limit`;
}

/** Before every session: no count is that high. */
const FIRST_LISTED: SessionListPosition = { pending: Number.MAX_SAFE_INTEGER, sessionKey: '' };

/** Event ids as one statement parameter: read in SQL through json_each. */
function idList(refs: readonly PendingRef[]): string {
  return JSON.stringify(refs.map((ref) => ref.id));
}

interface EventRef {
  eventId: string;
  seq: number;
}

/** The "accepted" and "stored" steps, from the JSON array [accepted detail, stored detail]. */
function acceptanceEntries(eventId: string, at: number, acceptedJson: string): TraceEntry[] {
  const [accepted, stored] = JSON.parse(acceptedJson) as [TraceDetail, TraceDetail];
  return [
    { eventId, step: 'accepted', at, detail: accepted },
    { eventId, step: 'stored', at, detail: stored },
  ];
}

const TRACE_COLUMNS = 'event_id AS eventId, step, at, detail, accepted_at AS acceptedAt, accepted';

/**
 * An event's trace from its rows (in write order) and, while it is pending, its acceptance:
 * `first`, the acceptance, and `rest`, the other steps. Acceptance comes first: it is the event's
 * first step, though a row carrying it was written when the event left the queue, after the rows
 * of what happened to it while pending (deduplicated, delivered, wake). Rows written before schema
 * 5 carry it in rows of its own, written first: `first` too, so a budget never trims it.
 */
function traceOf(eventId: string, rows: TraceRow[], pending: Acceptance | undefined): { first: TraceEntry[]; rest: TraceEntry[] } {
  const first: TraceEntry[] = pending ? acceptanceEntries(eventId, pending.acceptedAt, pending.accepted) : [];
  const rest: TraceEntry[] = [];
  for (const { step, at, detail, acceptedAt, accepted } of rows) {
    if (accepted !== null) first.push(...acceptanceEntries(eventId, acceptedAt!, accepted));
    if (step === ACCEPTED_AND_STORED) first.push(...acceptanceEntries(eventId, at, detail));
    else if (step === 'accepted' || step === 'stored') first.push({ eventId, step, at, detail: detailOf(step, detail) });
    else rest.push({ eventId, step, at, detail: detailOf(step, detail) });
  }
  return { first, rest };
}

/**
 * The steps a trace answers within `budget`: always its acceptance and its last step (where the
 * event is now), and as many of the steps between as fit, in order. `omitted` counts the steps
 * left out between those listed and the last one, `unread` of them never read (see MAX_TRACE_STEPS).
 */
function traceWithinBudget({ first, rest }: { first: TraceEntry[]; rest: TraceEntry[] }, unread: number, budget: ReadBudget): TracedEvent {
  const last = rest.slice(-1);
  charge(budget, [...first, ...last].reduce((sum, entry) => sum + traceStepBytes(entry), 0));
  const between = rest.slice(0, -1);
  const kept = takeWithinBudget(between, budget, traceStepBytes);
  return { steps: [...first, ...kept, ...last], omitted: between.length - kept.length + unread };
}

/**
 * A row's detail as it is read. "delivered" rows written before the field was renamed name their
 * connection ids (a string, "13" or "1,2") `connections`, the name "wake" rows give a count:
 * they are read as `connectionIds`, as written now, so one name means one thing.
 */
function detailOf(step: TraceStep, json: string): TraceDetail {
  const detail = JSON.parse(json) as TraceDetail;
  if (step !== 'delivered' || typeof detail['connections'] !== 'string') return detail;
  const { connections, ...rest } = detail;
  return { connectionIds: connections, ...rest };
}

const TOKEN_COLUMNS =
  'token_id AS tokenId, name, agent_id AS agentId, scopes, hash, created_at AS createdAt, revoked_at AS revokedAt';

/** A tokens row: scopes still JSON. */
type TokenRow = Omit<TokenRecord, 'scopes'> & { scopes: string };

function toTokenRecord(row: TokenRow): TokenRecord {
  return { ...row, scopes: JSON.parse(row.scopes) as TokenRecord['scopes'] };
}

/** Throws a RangeError naming the option unless `value` is an integer of at least `least`. */
function integerFrom(least: number, name: string, value: number, unit = ''): number {
  if (!Number.isInteger(value) || value < least) {
    throw new RangeError(`${name} must be an integer of at least ${least}${unit}, got ${value}`);
  }
  return value;
}

function prepareStatements(db: Database.Database) {
  return {
    idempotencyGet: db.prepare<[string], { fingerprint: string; result: string; createdAt: number }>(
      'SELECT fingerprint, result, created_at AS createdAt FROM idempotency WHERE key = ?',
    ),
    // An upsert: the key may still have an expired record that pruning has not reached yet.
    idempotencyPut: db.prepare<[string, string, string, number]>(
      `INSERT INTO idempotency (key, fingerprint, result, created_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE
       SET fingerprint = excluded.fingerprint, result = excluded.result, created_at = excluded.created_at`,
    ),
    // Through the created_at index, a slice at a time (see PRUNE_SLICE).
    idempotencyPrune: db.prepare<[number, number]>(
      'DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE created_at < ? LIMIT ?)',
    ),
    // For a session not in the cache only: a cached one's row may be behind (see SessionCache).
    session: db.prepare<[string], SessionRow>(
      `SELECT id, agent_id AS agentId, last_seq AS lastSeq, last_event_at AS lastEventAt, pending
       FROM sessions WHERE session_key = ?`,
    ),
    // By id, the table's rowid: found in the table itself, where the key is found in its index first.
    sessionPut: db.prepare<[number, string, string, number, number, number]>(
      `INSERT INTO sessions (id, session_key, agent_id, last_seq, last_event_at, pending) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE
       SET last_seq = excluded.last_seq, last_event_at = excluded.last_event_at, pending = excluded.pending`,
    ),
    sessionById: db.prepare<[number], { lastSeq: number; pending: number }>(
      'SELECT last_seq AS lastSeq, pending FROM sessions WHERE id = ?',
    ),
    sessionKeyById: db.prepare<[number], string>('SELECT session_key FROM sessions WHERE id = ?').pluck(),
    sessionCatchUp: db.prepare<[pending: number, lastSeq: number, lastEventAt: number, id: number]>(
      'UPDATE sessions SET pending = ?, last_seq = ?, last_event_at = ? WHERE id = ?',
    ),
    // Events by id: a session's pending events are found through the PendingIndex.
    newest: db.prepare<[number], NewestEvent>(
      'SELECT event_id AS eventId, seq, stored_at AS storedAt, text, context_key AS contextKey FROM events WHERE id = ?',
    ),
    storedAt: db.prepare<[number], number>('SELECT stored_at FROM events WHERE id = ?').pluck(),
    byContext: db.prepare<[number, string], EventRef>(
      'SELECT event_id AS eventId, seq FROM events WHERE session_id = ? AND context_key = ?',
    ),
    // Positional: binding an object by name cost ~0.45 µs more per append.
    insert: db.prepare<
      [sessionId: number, seq: number, eventId: string, text: string, mode: string, contextKey: string | null, storedAt: number, accepted: string]
    >(
      `INSERT INTO events (session_id, seq, event_id, text, mode, context_key, stored_at, accepted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    // One row by its id: through json_each, a list of one cost ~2 µs more than the delete itself,
    // and an append at the cap deletes one event.
    deleteEvent: db.prepare<[id: number], RemovedEvent & { seq: number }>(
      'DELETE FROM events WHERE id = ? RETURNING event_id AS eventId, seq, stored_at AS acceptedAt, accepted',
    ),
    isPending: db.prepare<[eventId: string], number>('SELECT 1 FROM events WHERE event_id = ?').pluck(),
    acceptance: db.prepare<[eventId: string], Acceptance>(
      'SELECT stored_at AS acceptedAt, accepted FROM events WHERE event_id = ? AND accepted IS NOT NULL',
    ),
    read: db.prepare<{ ids: string; sessionKey: string }, EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE id IN (SELECT value FROM json_each(@ids)) ORDER BY seq`,
    ),
    list: db.prepare<ListPage, ListedRow>(listPage('1')),
    listByAgent: db.prepare<ListPage & { agentId: string }, ListedRow>(listPage('agent_id = @agentId')),
    pendingKeys: db.prepare<[string], string>(
      'SELECT session_key FROM sessions WHERE agent_id = ? AND pending > 0 ORDER BY session_key',
    ).pluck(),
    traceInsert: db.prepare<[string, TraceRowStep, number, string, number | null, string | null]>(
      'INSERT INTO trace (event_id, step, at, detail, accepted_at, accepted) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    trace: db.prepare<[string, number], TraceRow>(`SELECT ${TRACE_COLUMNS} FROM trace WHERE event_id = ? ORDER BY id LIMIT ?`),
    traceLast: db.prepare<[string], TraceRow>(`SELECT ${TRACE_COLUMNS} FROM trace WHERE event_id = ? ORDER BY id DESC LIMIT 1`),
    traceCount: db.prepare<[string], number>('SELECT count(*) FROM trace WHERE event_id = ?').pluck(),
    deliveredCount: db
      .prepare<[string, number], number>("SELECT count(*) FROM (SELECT 1 FROM trace WHERE event_id = ? AND step = 'delivered' LIMIT ?)")
      .pluck(),
    traceAcceptance: db.prepare<[string], Acceptance>(
      'SELECT accepted_at AS acceptedAt, accepted FROM trace WHERE event_id = ? AND accepted IS NOT NULL LIMIT 1',
    ),
    // The expired rows of the oldest slice by id (see PRUNE_SLICE). Rows are written in time
    // order, so the expired ones come first. One dated ahead by a clock stepped back stays in the
    // slice until it expires itself, and until then the rows behind it go a slice per prune.
    tracePrune: db.prepare<[number, number]>(
      'DELETE FROM trace WHERE at < ? AND id IN (SELECT id FROM trace ORDER BY id LIMIT ?)',
    ),
    stats: db.prepare<[], StoreStats>(
      'SELECT count(*) AS sessions, coalesce(sum(pending), 0) AS pending FROM sessions WHERE pending > 0',
    ),
    statsByAgent: db.prepare<[string], StoreStats>(
      'SELECT count(*) AS sessions, coalesce(sum(pending), 0) AS pending FROM sessions WHERE agent_id = ? AND pending > 0',
    ),
    tokenInsert: db.prepare<[string, string | null, string, string, string, number, number | null]>(
      `INSERT INTO tokens (token_id, name, agent_id, scopes, hash, created_at, revoked_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    tokens: db.prepare<[], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at, token_id`),
    lastTokenCreatedAt: db.prepare<[], number | null>('SELECT max(created_at) FROM tokens').pluck(),
    tokensFirst: db.prepare<[number], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at, token_id LIMIT ?`),
    tokensAfter: db.prepare<[createdAt: number, tokenId: string, limit: number], TokenRow>(
      `SELECT ${TOKEN_COLUMNS} FROM tokens WHERE (created_at, token_id) > (?, ?) ORDER BY created_at, token_id LIMIT ?`,
    ),
    // Only a token not revoked yet: revoking again keeps the first revocation time.
    tokenRevoke: db.prepare<[number, string], TokenRow>(
      `UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL RETURNING ${TOKEN_COLUMNS}`,
    ),
    token: db.prepare<[string], TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE token_id = ?`),
  };
}

/**
 * How long an open that found the database locked tries again. A gateway holds its lock for as
 * long as it runs, but one opening the database holds it only a moment: two gateways started
 * together on a new data dir each took the other for a running one, and neither ran (QA). The one
 * that loses tries again, finds the winner's lock held for good, and says the data dir is in use.
 * Tries, not SQLite's busy wait: that is off (see openDatabaseOnce), and SQLite skips it anyway
 * where waiting could deadlock, as two connections upgrading their locks at once can.
 */
const LOCKED_RETRY_MS = 1000;
/** Pauses between those tries, at random within this, so two starts do not keep colliding. */
const LOCKED_RETRY_PAUSE_MS = 50;

/** Opens, locks and migrates the database, or throws StoreLockedError / StoreOpenError / NativeModuleError. */
function openDatabase(file: string, onMigrated: StoreOptions['onMigrated']): Database.Database {
  loadNativePart();
  const deadline = performance.now() + LOCKED_RETRY_MS;
  for (;;) {
    try {
      return openDatabaseOnce(file, onMigrated);
    } catch (error) {
      if (!(error instanceof StoreLockedError) || performance.now() >= deadline) throw error;
      // A gateway's start is synchronous up to here; nothing else runs while it waits.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1 + Math.random() * LOCKED_RETRY_PAUSE_MS);
    }
  }
}

/**
 * better-sqlite3 loads its native part at the first database, not at import: one that cannot be
 * loaded failed as the data dir's database, with advice about the data dir, and left an empty
 * file there (README QA). Tried on a database in memory first, before the file is made. SQLite's
 * own errors come once the native part is loaded.
 */
function loadNativePart(): void {
  try {
    new Database(':memory:').close();
  } catch (error) {
    throw sqliteCode(error) === undefined ? new NativeModuleError(error) : error;
  }
}

function openDatabaseOnce(file: string, onMigrated: StoreOptions['onMigrated']): Database.Database {
  let db: Database.Database | undefined;
  try {
    // The data dir holds the gateway's token as well: private to its owner.
    makePrivateDir(path.dirname(file));
    // SQLite would create it 0644 (less the umask), readable by every local user whoever made
    // the dir; its journals take the database file's mode, so 0600 here keeps them private too.
    createPrivateFile(file);
    // timeout 0: each try fails at once on a lock held; openDatabase decides whether to try again.
    db = new Database(file, { timeout: 0 });
    // With EXCLUSIVE, the first write takes a lock held until close, so a second gateway on the
    // same data dir fails at open instead of interleaving writes (and WAL needs no -shm file).
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      throw new StoreOpenError(file, `SQLite could not switch to WAL mode (got ${String(mode)})`, 'put the data dir on a local disk');
    }
    // FULL: in WAL mode NORMAL may lose the last commits on power loss, and append promises they
    // survive. The commit queue lowers it to NORMAL for batches of traces alone (see CommitQueue).
    db.pragma('synchronous = FULL');
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    // When a batch runs again because an operation threw, each operation runs in a savepoint (so a
    // failing one takes back only its own changes; see CommitQueue), whose statement journal would
    // otherwise go to a temp file: in memory it holds only the pages that one operation changed,
    // and costs no file I/O. Durability does not depend on it: it only undoes an operation inside
    // an open transaction, which a crash undoes anyway.
    db.pragma('temp_store = MEMORY');
    db.exec('BEGIN IMMEDIATE; COMMIT');
    const found = migrate(db, file);
    if (found > 0 && found < SCHEMA_VERSION) onMigrated?.(found, SCHEMA_VERSION);
    return db;
  } catch (error) {
    db?.close();
    throw openFailure(file, error);
  }
}

function openFailure(file: string, error: unknown): Error {
  if (error instanceof StoreOpenError) return error;
  const code = sqliteCode(error);
  if (code?.startsWith('SQLITE_BUSY') || code?.startsWith('SQLITE_LOCKED')) {
    return new StoreLockedError(file, { cause: error });
  }
  if (isCorruption(code)) return corruptStoreError(file, code, error);
  const message = error instanceof Error ? error.message : String(error);
  return new StoreOpenError(
    file,
    code === undefined ? message : `${message} (${code})`,
    code === 'SQLITE_FULL'
      ? 'free some space on its disk, or give a data dir on another disk'
      : 'check that the data dir is readable and writable by this user, on a file system mounted read-write',
    { cause: error },
  );
}

interface Limits {
  maxPending: number;
  minFreeDiskBytes: number;
  idempotencyRetentionMs: number;
  sessionCacheSize: number;
}

export class SqliteEventStore implements EventStore, TokenStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #queue: CommitQueue;
  readonly #maxPending: number;
  readonly #freeSpace: FreeSpaceGuard;
  readonly #idleCheckpoint: IdleCheckpoint;
  /**
   * Whether new events were refused for want of room when the store last looked (see #roomShortage):
   * when it next finds room, it says so.
   */
  #refusingForRoom = false;
  /** Looks for room while new events are refused (see ROOM_WATCH_MS). */
  #roomWatch: NodeJS.Timeout | undefined;
  readonly #onRoomAgain: (availableBytes: number | undefined) => void;
  /** Backups under way (see backup), and whether a shutdown has stopped them. */
  readonly #backups = new Set<Promise<unknown>>();
  #backupsStopped = false;
  /** The detail of the trace of an event dropped at the cap (JSON). */
  readonly #droppedDetail: string;
  readonly #idempotencyRetentionMs: number;
  readonly #onBackgroundError: (error: unknown) => void;
  readonly #onWarning: (message: string) => void;
  readonly #file: string;
  readonly #pruneTimer: NodeJS.Timeout;
  readonly #sessions: SessionCache;
  readonly #pending: PendingIndex;
  /**
   * The largest session id handed out. Counted here because the table's largest id misses the
   * sessions new in the running batch (their rows are written when it ends). Never taken back when
   * an append is rolled back: its id is skipped, so no id can name two sessions. Only at open does
   * it start again from the table, when nothing can hold an id the table lacks.
   */
  #lastSessionId: number;
  /** Entries recorded since the queued trace write last ran; that write takes all of them. */
  #traceBatch: TraceEntry[] | undefined;
  #closing: Promise<void> | undefined;

  /** Opens the store in `file`, creating it and its directory if needed. */
  static open(file: string, options: StoreOptions): SqliteEventStore {
    // Validated before the database is touched: a bad option must not leave it locked.
    const limits: Limits = {
      maxPending: integerFrom(1, 'maxPendingPerSession', options.maxPendingPerSession),
      minFreeDiskBytes: integerFrom(0, 'minFreeDiskBytes', options.minFreeDiskBytes ?? DEFAULT_MIN_FREE_DISK_BYTES, ' (bytes)'),
      idempotencyRetentionMs: integerFrom(
        1,
        'idempotencyRetentionMs',
        options.idempotencyRetentionMs ?? DEFAULT_IDEMPOTENCY_RETENTION_MS,
        ' (milliseconds)',
      ),
      sessionCacheSize: integerFrom(1, 'sessionCacheSize', options.sessionCacheSize ?? SESSION_CACHE_SIZE),
    };
    const db = openDatabase(file, options.onMigrated);
    try {
      // Reads every pending event (the PendingIndex): damage beyond the pages opening read shows here.
      return new SqliteEventStore(db, file, limits, options);
    } catch (error) {
      db.close();
      throw openFailure(file, error);
    }
  }

  private constructor(db: Database.Database, file: string, limits: Limits, options: StoreOptions) {
    this.#db = db;
    this.#file = file;
    this.#sql = prepareStatements(db);
    this.#pending = PendingIndex.fromRows(
      db.prepare<[], { id: number; sessionId: number; seq: number }>('SELECT id, session_id AS sessionId, seq FROM events ORDER BY id').iterate(),
    );
    this.#sessions = new SessionCache(
      {
        write: (sessionKey, { id, agentId, lastSeq, lastEventAt, pending }) =>
          this.#sql.sessionPut.run(id, sessionKey, agentId, lastSeq, lastEventAt, pending),
        reconcile: () => this.#reconcileSessions(),
      },
      undefined,
      limits.sessionCacheSize,
    );
    this.#lastSessionId = db.prepare<[], number>('SELECT coalesce(max(id), 0) FROM sessions').pluck().get()!;
    // The file first: a batch it refuses is rolled back before the others did any work for it. The
    // index before the cache: a batch rolled back restores it before the cache, gone stale,
    // reconciles from it.
    this.#idleCheckpoint = new IdleCheckpoint(
      () => this.#foldWal(),
      () => this.#needsRoom(),
    );
    this.#queue = new CommitQueue(db, observeAll(databaseFileGuard(file), this.#pending, this.#sessions, this.#idleCheckpoint), {
      ...(options.onWritesRecovered ? { onWritesRecovered: options.onWritesRecovered } : {}),
    });
    this.#maxPending = limits.maxPending;
    this.#freeSpace = new FreeSpaceGuard(path.dirname(file), limits.minFreeDiskBytes, options.readFreeSpace);
    this.#droppedDetail = JSON.stringify({ reason: DROPPED_REASON, cap: limits.maxPending });
    this.#idempotencyRetentionMs = limits.idempotencyRetentionMs;
    this.#onBackgroundError = options.onBackgroundError ?? (() => undefined);
    this.#onWarning = options.onWarning ?? (() => undefined);
    this.#onRoomAgain = options.onRoomAgain ?? (() => undefined);
    // Short of room already: the gateway warns at its start, and room found later is told (operator QA).
    this.#roomShortage();
    this.#prune();
    // unref: pruning alone must not keep the process alive.
    this.#pruneTimer = setInterval(() => this.#prune(), PRUNE_INTERVAL_MS).unref();
  }

  append<R>(request: AppendRequest<R>): Promise<AppendResult<R>> {
    return this.#submit(() => this.#append(request));
  }

  peek(sessionKey: string, options: ReadOptions): Promise<ReadResult> {
    return this.#submitRead(() => this.#read(sessionKey, options));
  }

  drain(sessionKey: string, options: ReadOptions, detail: TraceDetail): Promise<ReadResult> {
    const after = options.after ?? 0;
    return this.#submit(() => this.#read(sessionKey, options, detail), {
      weight: () => Math.min(options.limit, this.#pendingBetween(sessionKey, after, Number.POSITIVE_INFINITY)),
    });
  }

  listSessions(options: ListOptions): Promise<{ sessions: SessionRecord[]; more: boolean }> {
    return this.#readSessions(() => {
      const { agentId, limit, budget = readBudget(), after = FIRST_LISTED } = options;
      const page = { pending: after.pending, sessionKey: after.sessionKey, limit: limit + 1 };
      const rows = agentId === undefined ? this.#sql.list.all(page) : this.#sql.listByAgent.all({ ...page, agentId });
      const sessions = takeWithinBudget(rows.slice(0, limit), budget, sessionBytes).map(({ id, ...row }): SessionRecord => {
        // The oldest event by seq, not min(stored_at): the two differ only if the clock stepped back.
        const [oldest] = this.#pending.after(id, 0, 1);
        return { ...row, oldestPendingAt: oldest === undefined ? null : this.#sql.storedAt.get(oldest.id)! };
      });
      return { sessions, more: rows.length > sessions.length };
    });
  }

  stats(agentId?: string): Promise<StoreStats> {
    // An aggregate without GROUP BY always yields exactly one row.
    return this.#readSessions(() => (agentId === undefined ? this.#sql.stats.get() : this.#sql.statsByAgent.get(agentId))!);
  }

  writeHealth(): WriteHealth {
    return this.#queue.writeHealth();
  }

  freeDisk(): { availableBytes: number | undefined; minFreeBytes: number; refusing: boolean } {
    const refusing = this.#roomShortage() !== undefined;
    return { availableBytes: this.#freeSpace.available(), minFreeBytes: this.#freeSpace.minFreeBytes, refusing };
  }

  /**
   * At most REMOVE_SLICE_EVENTS events per operation, each slice its own commit: as one operation,
   * an ack of 100,000 events (a cap raised that far) held the event loop ~0.7 s. An ack consumes
   * every event up to its seq, so slices that committed before a crash leave the oldest of them
   * consumed, and the client's ack sent again consumes the rest.
   */
  async ack(sessionKey: string, seq: number, detail: TraceDetail): Promise<AckResult> {
    let acked = 0;
    let upTo = 0;
    for (;;) {
      let slice: AckSlice;
      try {
        slice = await this.#submit(() => this.#ackSlice(sessionKey, seq, detail), {
          weight: () => Math.min(REMOVE_SLICE_EVENTS, this.#pendingBetween(sessionKey, 0, seq)),
        });
      } catch (error) {
        // Not "the call changed nothing": the slices before it are consumed (review).
        if (acked === 0 || !(error instanceof StoreUnavailableError)) throw error;
        throw new StoreUnavailableError(error.cause, `the ack consumed ${acked} events first, up to seq ${upTo}; sent again, it consumes the rest`);
      }
      if (slice.status === 'out-of-range') return slice;
      acked += slice.acked;
      upTo = slice.upTo;
      if (upTo === seq) return { status: 'acked', acked, depth: slice.depth, lastSeq: slice.lastSeq };
    }
  }

  /**
   * How many pending events of the session have a seq in (after, upTo], at least one: the weight of
   * an ack or a drain, each a delete and a trace row per event it consumes, so a large one commits
   * apart from a full batch (review). Read between batches, from the pending index.
   */
  #pendingBetween(sessionKey: string, after: number, upTo: number): number {
    const sessionId = this.#sessions.get(sessionKey)?.id ?? this.#sql.session.get(sessionKey)?.id;
    if (sessionId === undefined) return 1;
    return Math.max(1, this.#pending.countBetween(sessionId, after, upTo));
  }

  lastSeqs(sessionKeys: readonly string[]): Promise<number[]> {
    return this.#submitRead(() => sessionKeys.map((sessionKey) => this.#session(sessionKey)?.lastSeq ?? 0));
  }

  pendingSessionKeys(agentId: string): Promise<string[]> {
    return this.#readSessions(() => this.#sql.pendingKeys.all(agentId));
  }

  async dropOverCap(): Promise<{ events: number; sessions: number; finished: boolean }> {
    let events = 0;
    const sessions = new Set<number>();
    // Looked for in memory before each slice: a start with nothing over the cap writes nothing (QA:
    // on a full disk every start logged that it could not drop events, with none over the cap).
    for (let over = this.#sessionsOverCap(); over.length > 0; over = this.#sessionsOverCap()) {
      // Closing ends it between slices: the next open goes on with what is left.
      if (this.#closing) return { events, sessions: sessions.size, finished: false };
      const slice = await this.#submit(() => this.#dropOverCapSlice(over), { weight: () => REMOVE_SLICE_EVENTS });
      if (slice.events === 0) break;
      events += slice.events;
      for (const sessionId of slice.sessionIds) sessions.add(sessionId);
    }
    return { events, sessions: sessions.size, finished: true };
  }

  recordTrace(entries: TraceEntry[]): void {
    if (this.#closing) return;
    for (const entry of entries) {
      let batch = this.#traceBatch;
      if (!batch || batch.length === TRACE_ROWS_PER_OPERATION) {
        batch = this.#traceBatch = [];
        this.#queueTraceWrite(batch);
      }
      batch.push(entry);
    }
  }

  trace(eventId: string, budget = readBudget()): Promise<TracedEvent> {
    return this.#submitRead(() => {
      const acceptance = this.#sql.acceptance.get(eventId);
      const rows = this.#sql.trace.all(eventId, MAX_TRACE_STEPS + 1);
      if (rows.length <= MAX_TRACE_STEPS) return traceWithinBudget(traceOf(eventId, rows, acceptance), 0, budget);
      // The last row too: where the event is now matters most. The rest are counted, not read,
      // but for the acceptance one of them may carry (a step written after the event left the queue).
      const read = [...rows.slice(0, MAX_TRACE_STEPS - 1), this.#sql.traceLast.get(eventId)!];
      const carried = acceptance ?? (read.some((row) => row.accepted !== null) ? undefined : this.#sql.traceAcceptance.get(eventId));
      return traceWithinBudget(traceOf(eventId, read, carried), this.#sql.traceCount.get(eventId)! - read.length, budget);
    });
  }

  listTokens(): Promise<TokenRecord[]> {
    return this.#submitRead(() => this.#sql.tokens.all().map(toTokenRecord));
  }

  tokenPage({ after, limit, budget = readBudget() }: TokenPageOptions): Promise<{ tokens: TokenRecord[]; more: boolean } | undefined> {
    return this.#submitRead(() => {
      const last = after === undefined ? undefined : this.#sql.token.get(after);
      if (after !== undefined && last === undefined) return undefined;
      const rows = last === undefined ? this.#sql.tokensFirst.all(limit + 1) : this.#sql.tokensAfter.all(last.createdAt, last.tokenId, limit + 1);
      const tokens = takeWithinBudget(rows.slice(0, limit), budget, tokenBytes).map(toTokenRecord);
      return { tokens, more: rows.length > tokens.length };
    });
  }

  createToken(record: TokenRecord): Promise<TokenRecord> {
    return this.#submit(() => {
      // After every token before it, so a page of token.list, which goes on after the last
      // (created_at, token_id) it listed, never skips one: a token made later in the same
      // millisecond, its random id sorting lower, or after the clock stepped back, would be.
      const createdAt = Math.max(record.createdAt, (this.#sql.lastTokenCreatedAt.get() ?? 0) + 1);
      const { tokenId, name, agentId, scopes, hash, revokedAt } = record;
      this.#sql.tokenInsert.run(tokenId, name, agentId, JSON.stringify(scopes), hash, createdAt, revokedAt);
      return { ...record, createdAt };
    });
  }

  revokeToken(tokenId: string): Promise<TokenRevocation | undefined> {
    return this.#submit(() => {
      const revoked = this.#sql.tokenRevoke.get(Date.now(), tokenId);
      if (revoked) return { record: toTokenRecord(revoked), alreadyRevoked: false };
      const row = this.#sql.token.get(tokenId);
      return row && { record: toTokenRecord(row), alreadyRevoked: true };
    });
  }

  async backup(asked: string): Promise<{ bytes: number }> {
    if (this.#closing || this.#backupsStopped) throw new StoreClosedError();
    // better-sqlite3 trims the name it writes to: "/backups/x.db " would be created here, and x.db written.
    if (asked !== asked.trim()) throw new BackupError(asked, 'the path begins or ends with whitespace: name the file without it');
    // SQLite's online backup, page by page between the store's own work: a write through this
    // connection while it runs is copied too, so the copy is the store as of its last step, whole.
    // Copying the files instead tears the database when a checkpoint writes into it meanwhile.
    // SQLite opens the copy again by its name: in a directory someone else may rename files in,
    // they could swap it for a link to a file of the gateway user's, which the copy would overwrite.
    // Every name below is in the directory as resolved once: no link in the path asked is read again.
    let target: ReturnType<typeof resolvedPrivateDir>;
    try {
      target = resolvedPrivateDir(path.dirname(asked));
    } catch (error) {
      throw new BackupError(asked, backupTargetProblem(asked, error), { cause: error });
    }
    if ('problem' in target) {
      throw new BackupError(asked, `${target.problem}, who could swap the copy for a link elsewhere: back up into a directory of your own`);
    }
    const file = path.join(target.dir, path.basename(asked));
    refuseExistingTarget(file);
    // The copy is made under a name of its own, and given the one asked for once whole: a backup
    // cut short (kill -9, a power loss) leaves a file no one would take for a backup. Under the
    // name asked for, a part-copy restored as a data dir's database opened as an empty store.
    // Named after the file, cut short so that a name near the file system's longest still fits.
    const draft = path.join(path.dirname(file), `.${path.basename(file).slice(0, 100)}.${process.pid}-${Math.random().toString(36).slice(2)}.partial`);
    try {
      createPrivateFile(draft);
    } catch (error) {
      throw new BackupError(file, backupTargetProblem(file, error), { cause: error });
    }
    // Stopped between two steps by a shutdown: it waits for no backup, which may take minutes.
    const running = this.#db.backup(draft, {
      progress: () => {
        if (this.#backupsStopped) throw new StoreClosedError();
        return BACKUP_PAGES_PER_STEP;
      },
    });
    this.#backups.add(running);
    try {
      await running;
      const bytes = statSync(draft).size;
      nameWholeCopy(draft, file);
      return { bytes };
    } catch (error) {
      if (error instanceof StoreClosedError || error instanceof BackupError) throw error;
      throw new BackupError(file, (error as Error).message, { cause: error });
    } finally {
      this.#backups.delete(running);
      // SQLite's own journal of the copy too, left by a copy that failed.
      for (const leftover of [draft, `${draft}-journal`]) rmSync(leftover, { force: true });
    }
  }

  /** Stops every backup at its next step, its file removed: a shutdown has begun. Later ones are refused. */
  stopBackups(): void {
    this.#backupsStopped = true;
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /**
   * Commits so far, for benchmarks: opsCommitted / commits is the mean batch size; durableCommits
   * are the ones that fsync.
   */
  storeMetrics(): CommitMetrics {
    return this.#queue.metrics();
  }

  #submit<T>(operation: () => T, options?: RunOptions): Promise<T> {
    if (this.#closing) return Promise.reject(new StoreClosedError());
    return this.#queue.run(operation, options);
  }

  /** Runs `query`, which changes nothing: it is answered even when its batch cannot commit (see RunOptions). */
  #submitRead<T>(query: () => T): Promise<T> {
    return this.#submit(query, READ_ONLY);
  }

  /**
   * Between batches: the WAL folded back into the database and cut to nothing (see IdleCheckpoint),
   * when it holds IDLE_CHECKPOINT_MIN_WAL_BYTES or writes fail; a smaller one costs the checkpoint
   * more than the room it gives, and the file grown again makes the next commits sync its size.
   */
  #foldWal(): void {
    if (this.#closing || this.#db.inTransaction) return;
    if (this.#walBytes() < IDLE_CHECKPOINT_MIN_WAL_BYTES && !this.#needsRoom()) return;
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Nothing is lost: the WAL stays as it is, and the next idle moment, or the close, tries again.
    }
    // The pages folded back may be what gives the disk its room again.
    this.#roomShortage();
  }

  /** Why no new event may be stored now, if so; told to onRoomAgain when there is room again. */
  #roomShortage(now?: number): DiskShortage | undefined {
    const shortage = this.#freeSpace.shortage(now);
    if (shortage) {
      this.#refusingForRoom = true;
      // unref: looking for room must not keep the process alive.
      if (!this.#closing) this.#roomWatch ??= setInterval(() => this.#roomShortage(), ROOM_WATCH_MS).unref();
    } else if (this.#refusingForRoom) {
      this.#refusingForRoom = false;
      clearInterval(this.#roomWatch);
      this.#roomWatch = undefined;
      this.#onRoomAgain(this.#freeSpace.available(now));
    }
    return shortage;
  }

  /** The size of the write-ahead log beside the database; 0 when there is none. */
  #walBytes(): number {
    return statSync(`${this.#file}-wal`, { throwIfNoEntry: false })?.size ?? 0;
  }

  /**
   * Whether the disk wants what folding the WAL back gives: writes fail, or new events are refused
   * for want of room, which the WAL may be what took (QA: a publisher retrying STORE_FULL every
   * 200 ms kept the store from ever looking idle, and the 26 MiB WAL that caused the refusals).
   */
  #needsRoom(): boolean {
    return this.#queue.writeHealth().failingSince !== undefined || this.#freeSpace.shortage() !== undefined;
  }

  /** Runs `query`, which reads the sessions table, once every row in it is up to date. */
  #readSessions<T>(query: () => T): Promise<T> {
    return this.#submitRead(() => {
      this.#sessions.writeBack();
      return query();
    });
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#pruneTimer);
    clearInterval(this.#roomWatch);
    this.#idleCheckpoint.stop();
    // Before the connection closes under them: each ends at its next step, and removes its file.
    this.stopBackups();
    await Promise.allSettled([...this.#backups]);
    // The queue runs in order, so once this has committed, everything queued before it has, and
    // every session row is up to date. Its failure, if any, was already reported to the operations
    // of its batch (and the next open reconciles the rows).
    await this.#queue.run(() => this.#sessions.writeBack()).catch(() => undefined);
    // Nothing is lost when it fails: the WAL stays beside the database and is replayed at the next
    // open. But the database alone is then not the store, and whoever copies or moves it must know.
    let unfolded: string | undefined;
    try {
      const [result] = this.#db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number; log: number; checkpointed: number }>;
      if (result?.busy) unfolded = 'the database was busy';
      else if (result && result.checkpointed < result.log) unfolded = `${result.checkpointed} of its ${result.log} pages were copied`;
    } catch (error) {
      unfolded = (error as Error)?.message ?? String(error);
    }
    this.#db.close();
    // Closing tries once more, and may have folded it after all. Whatever the checkpoint said, a
    // WAL left is told: one on a full disk was left without a word, and the database alone was
    // then malformed (QA).
    if (this.#walBytes() > 0) {
      this.#onWarning(
        `the write-ahead log could not be folded back into ${this.#file} (${unfolded ?? 'SQLite left it at close: is the disk full?'}): ${this.#file}-wal holds the latest events; keep it beside the database, and copy or move the two together (the next start replays it)`,
      );
    }
  }

  /**
   * One operation writes every entry recorded until it runs (up to TRACE_ROWS_PER_OPERATION; the
   * next ones go to an operation queued after it), so traces cost no commit of their own: they
   * ride in the batch of whatever else is queued. Queued ahead of close()'s final operation, so
   * close() writes them too. Not durable: a batch of traces alone commits without an fsync, and the
   * next durable commit's fsync takes them along (see CommitQueue).
   */
  #queueTraceWrite(batch: TraceEntry[]): void {
    const detach = () => {
      if (this.#traceBatch === batch) this.#traceBatch = undefined;
    };
    this.#queue
      .run(() => {
        detach();
        for (const { eventId, step, at, detail } of batch) {
          // A wake is recorded when it goes out, up to a heartbeat's interval after its event was
          // stored: one for an event acked, drained, replaced or dropped meanwhile sent no one to it.
          if (step === 'wake' && this.#sql.isPending.get(eventId) === undefined) continue;
          if (step === 'delivered' && detail['replay'] === true && this.#replaysTraced(eventId)) continue;
          this.#writeTrace(eventId, step, at, JSON.stringify(detail));
        }
      }, { durable: false, weight: () => Math.ceil(batch.length / TRACE_ROWS_PER_APPEND) })
      .catch((error: unknown) => {
        // A batch rejected before this operation ran: its entries are lost with it.
        detach();
        this.#onBackgroundError(error);
      });
  }

  /** The event's trace holds MAX_REPLAYS_TRACED_PER_EVENT "delivered" steps or more: its replays are traced no more. */
  #replaysTraced(eventId: string): boolean {
    return (this.#sql.deliveredCount.get(eventId, MAX_REPLAYS_TRACED_PER_EVENT) ?? 0) >= MAX_REPLAYS_TRACED_PER_EVENT;
  }

  /**
   * Deletes traces older than TRACE_RETENTION_MS, then idempotency records older than their
   * retention, one slice per operation (shared by both) until none is left.
   */
  #prune(): void {
    if (this.#closing) return;
    const now = Date.now();
    const traceCutoff = now - TRACE_RETENTION_MS;
    const idempotencyCutoff = now - this.#idempotencyRetentionMs;
    this.#queue
      .run(() => {
        const traces = this.#sql.tracePrune.run(traceCutoff, PRUNE_SLICE).changes;
        // LIMIT 0 once the traces took the whole slice: the records wait for the next operation.
        return traces + this.#sql.idempotencyPrune.run(idempotencyCutoff, PRUNE_SLICE - traces).changes;
      }, PRUNE_OPTIONS)
      .then((deleted) => {
        if (deleted === PRUNE_SLICE) this.#prune();
      }, this.#onBackgroundError);
  }

  #writeTrace(eventId: string, step: TraceRowStep, at: number, detailJson: string, acceptance?: Acceptance): void {
    this.#sql.traceInsert.run(eventId, step, at, detailJson, acceptance?.acceptedAt ?? null, acceptance?.accepted ?? null);
  }

  #append<R>(request: AppendRequest<R>): AppendResult<R> {
    const { idempotency } = request;
    const now = Date.now();
    if (idempotency) {
      const seen = this.#sql.idempotencyGet.get(idempotency.key);
      // Past its retention a record is absent, whether or not a prune has deleted it yet: the
      // answer must not depend on when pruning last ran. Same bound as the prune's cutoff.
      if (seen && seen.createdAt >= now - this.#idempotencyRetentionMs) {
        return seen.fingerprint === idempotency.fingerprint
          ? { status: 'duplicate', result: JSON.parse(seen.result) as R }
          : { status: 'conflict' };
      }
    }
    const queued = this.#queueEvent(request, now);
    if ('shortage' in queued) return { status: 'disk-full', ...queued.shortage };
    const { outcome, result } = queued;
    if (idempotency) {
      this.#sql.idempotencyPut.run(idempotency.key, idempotency.fingerprint, JSON.stringify(result), now);
    }
    return { status: 'stored', result, outcome };
  }

  /**
   * Dedupe, contextKey replacement, cap, insert: the session queue's rules, in that order. Its
   * trace is written here too, in its transaction: as durable as the event, and never without it.
   * The result is built before the event's row is written, which carries what it says of the
   * result (storedDetail); a failing insert rolls the batch back, so nothing built is answered.
   */
  #queueEvent<R>({ event, ingress, complete, storedDetail }: AppendRequest<R>, now: number): { outcome: AppendOutcome; result: R } | { shortage: DiskShortage } {
    const { sessionKey } = event;
    const session = this.#session(sessionKey);
    const newest = session && this.#newest(session);
    // Identical means the same text under the same contextKey: an event under another key is
    // that key's to replace later, so it cannot be folded into this one.
    if (session && newest && newest.text === event.text && newest.contextKey === event.contextKey) {
      const { eventId, seq, storedAt } = newest;
      const depth = session.pending;
      // On the pending event that stands for this one: who sent the copy, and the queue it found.
      this.#writeTrace(eventId, 'deduplicated', now, JSON.stringify({ ...ingress, depth }));
      const outcome: AppendOutcome = { status: 'deduplicated', eventId, seq, storedAt, depth, replaced: null, dropped: [] };
      return { outcome, result: complete(outcome) };
    }
    // After the idempotency record and the dedupe rule: what is stored already is answered as
    // stored, room or not (review: a retry of a stored event was told it was not).
    const shortage = this.#roomShortage(now);
    if (shortage) return { shortage };

    const sessionId = session?.id ?? ++this.#lastSessionId;
    let pending = session?.pending ?? 0;
    const eventId = newEventId();
    const replacedRef = event.contextKey === null ? undefined : this.#sql.byContext.get(sessionId, event.contextKey);
    const [replaced] = replacedRef
      ? this.#removeEvents(sessionId, replacedRef.seq - 1, replacedRef.seq, { step: 'replaced', at: now, detail: JSON.stringify({ byEventId: eventId }) })
      : [];
    if (replaced) pending--;

    const seq = (session?.lastSeq ?? 0) + 1;
    const status = replaced ? 'replaced' : 'queued';
    const { text, mode, contextKey } = event;
    pending++;

    let dropped: EventRef[] = [];
    if (pending > this.#maxPending) {
      // Past the cap by more than this event: the store was opened with a lower cap, and
      // dropOverCap has not reached this session yet. Those are the lowered cap's drops, not this
      // append's to list: its answer would name them all (thousands), past what a frame holds.
      const excess = pending - this.#maxPending;
      if (excess > 1) pending -= this.#dropOldest(sessionId, excess - 1, now).length;
      dropped = this.#dropOldest(sessionId, 1, now);
      pending -= dropped.length;
    }

    // Due now only when the row cannot be repaired from the events table (see SessionCache): a
    // new session's. Replacing or dropping events leaves this newer one pending, which shows the
    // row to lag.
    const due = !session;
    this.#sessions.update(sessionKey, {
      id: sessionId,
      // A session's agent is the one of its first event (its key names it).
      agentId: session?.agentId ?? event.agentId,
      lastSeq: seq,
      lastEventAt: now,
      pending,
      // Replacing and dropping never remove the new event: it is the newest.
      newest: text.length <= NEWEST_TEXT_CACHE_LIMIT ? { eventId, seq, storedAt: now, text, contextKey } : undefined,
    }, due);
    const outcome: AppendOutcome = { status, eventId, seq, storedAt: now, depth: pending, replaced: replaced ?? null, dropped };
    const result = complete(outcome);
    const stored = { sessionKey, seq, status, ...storedDetail?.(result) };
    const accepted = `[${JSON.stringify(ingress)},${JSON.stringify(stored)}]`;
    const { lastInsertRowid } = this.#sql.insert.run(sessionId, seq, eventId, text, mode, contextKey, now, accepted);
    this.#pending.add(sessionId, seq, Number(lastInsertRowid));
    return { outcome, result };
  }

  /** The session's state, from the cache or else from its row; undefined when it has no row. */
  #session(sessionKey: string): SessionState | undefined {
    let session = this.#sessions.get(sessionKey);
    if (!session) {
      const row = this.#sql.session.get(sessionKey);
      if (!row) return undefined;
      session = { ...row, newest: undefined };
      this.#sessions.load(sessionKey, session);
    }
    return session;
  }

  /** The session's newest pending event, if it has any: from the cache or else from the table. */
  #newest(session: SessionState): NewestEvent | undefined {
    if (session.pending === 0) return undefined;
    if (session.newest) return session.newest;
    const ref = this.#pending.newest(session.id);
    return ref && this.#sql.newest.get(ref.id);
  }

  /**
   * Deletes the session's pending events with a seq in (after, upTo], and writes the trace row of
   * their removal, each carrying on its event's acceptance (see Acceptance). Returns them in seq order.
   */
  #removeEvents(sessionId: number, after: number, upTo: number, removal: Removal): EventRef[] {
    const refs = this.#pending.remove(sessionId, after, upTo);
    const { step, at, detail } = removal;
    const removed: EventRef[] = [];
    // In seq order, as the index gives them.
    for (const { id } of refs) {
      const row = this.#sql.deleteEvent.get(id);
      if (!row) continue;
      const { eventId, seq, acceptedAt, accepted } = row;
      this.#writeTrace(eventId, step, at, detail, accepted === null ? undefined : { acceptedAt, accepted });
      removed.push({ eventId, seq });
    }
    return removed;
  }

  /**
   * Brings rows that lag their sessions' appends up to date (see SessionCache). A row lags when
   * the session holds events beyond the row's last seq; the newest of them gives the last seq and
   * time, and the PendingIndex, which knows every pending event, the count (events the appends
   * replaced or dropped since the row was written are no longer in it). Only sessions with pending
   * events can lag.
   */
  #reconcileSessions(): void {
    for (const sessionId of this.#pending.sessionIds()) {
      const row = this.#sql.sessionById.get(sessionId);
      // A new session's row is written in the batch of its first event: never missing.
      if (!row || this.#pending.countAfter(sessionId, row.lastSeq) === 0) continue;
      const newest = this.#pending.newest(sessionId)!;
      const pending = this.#pending.countAfter(sessionId, 0);
      this.#sql.sessionCatchUp.run(pending, newest.seq, this.#sql.storedAt.get(newest.id)!, sessionId);
    }
  }

  /** Records that the session's pending events up to `upToSeq` were consumed, `depth` left. */
  #consumed(sessionKey: string, session: SessionState, depth: number, upToSeq: number): void {
    const newest = session.newest && session.newest.seq > upToSeq ? session.newest : undefined;
    // Due: the consumed events are gone from the table, so it can no longer repair the row.
    this.#sessions.update(sessionKey, { ...session, pending: depth, newest }, true);
  }

  /**
   * One slice of dropOverCap: at most REMOVE_SLICE_EVENTS events, oldest first in each session.
   * Returns the ids of the sessions it dropped from, and how many events.
   */
  #dropOverCapSlice(over: readonly number[]): { events: number; sessionIds: number[] } {
    const at = Date.now();
    let events = 0;
    const sessionIds: number[] = [];
    for (const sessionId of over) {
      const excess = Math.min(this.#pending.countAfter(sessionId, 0) - this.#maxPending, REMOVE_SLICE_EVENTS - events);
      // Listed before the slice ran: an ack, or an append dropping at the cap, may have come between.
      if (excess <= 0) continue;
      const sessionKey = this.#sql.sessionKeyById.get(sessionId)!;
      const session = this.#session(sessionKey)!;
      const dropped = this.#dropOldest(sessionId, excess, at);
      this.#consumed(sessionKey, session, session.pending - dropped.length, dropped.at(-1)?.seq ?? 0);
      events += dropped.length;
      sessionIds.push(sessionId);
      if (events >= REMOVE_SLICE_EVENTS) break;
    }
    return { events, sessionIds };
  }

  /** The sessions holding more pending events than the cap (a gateway started with a lower one than before). */
  #sessionsOverCap(): number[] {
    return [...this.#pending.sessionIds()].filter((sessionId) => this.#pending.countAfter(sessionId, 0) > this.#maxPending);
  }

  /** Drops the session's `count` oldest events (never a new one, not in the index yet), traced as dropped at the cap. */
  #dropOldest(sessionId: number, count: number, at: number): EventRef[] {
    const lastDropped = this.#pending.after(sessionId, 0, count).at(-1)!;
    return this.#removeEvents(sessionId, 0, lastDropped.seq, { step: 'dropped', at, detail: this.#droppedDetail });
  }

  /** Acks the session's oldest pending events up to `seq`, at most REMOVE_SLICE_EVENTS; `upTo` is where it stopped. */
  #ackSlice(sessionKey: string, seq: number, detail: TraceDetail): AckSlice {
    const session = this.#session(sessionKey);
    const lastSeq = session?.lastSeq ?? 0;
    if (seq > lastSeq) return { status: 'out-of-range', lastSeq };
    // Seq 0 acks nothing, in a session with no event yet as in any other.
    if (!session) return { status: 'acked', acked: 0, depth: 0, lastSeq, upTo: seq };
    const upTo =
      this.#pending.countBetween(session.id, 0, seq) > REMOVE_SLICE_EVENTS
        ? this.#pending.after(session.id, 0, REMOVE_SLICE_EVENTS).at(-1)!.seq
        : seq;
    const acked = this.#removeEvents(session.id, 0, upTo, { step: 'acked', at: Date.now(), detail: JSON.stringify(detail) });
    const depth = session.pending - acked.length;
    if (acked.length > 0) this.#consumed(sessionKey, session, depth, upTo);
    return { status: 'acked', acked: acked.length, depth, lastSeq: session.lastSeq, upTo };
  }

  /** Reads the session's pending events; consumes those returned when `drainedBy` says who drains them. */
  #read(sessionKey: string, { after = 0, limit, budget = readBudget() }: ReadOptions, drainedBy?: TraceDetail): ReadResult {
    const session = this.#session(sessionKey);
    // A session with events has a row (or a state on its way to one).
    if (!session) return { events: [], depth: 0, more: false };
    const refs = this.#pending.after(session.id, after, limit + 1);
    const rows = refs.length === 0 ? [] : this.#sql.read.all({ ids: idList(refs), sessionKey });
    const events = takeWithinBudget(rows.slice(0, limit), budget, eventBytes);
    let depth = session.pending;
    const last = events.at(-1);
    if (drainedBy && last) {
      // The events read are exactly the pending ones in (after, last.seq]: delete that range.
      this.#removeEvents(session.id, after, last.seq, { step: 'drained', at: Date.now(), detail: JSON.stringify(drainedBy) });
      depth -= events.length;
      this.#consumed(sessionKey, session, depth, last.seq);
    }
    return { events, depth, more: rows.length > events.length };
  }
}

/**
 * Trace rows that cost what one append does: a row is one insert into a table and its index, where
 * an append makes several, and its trace row besides (~4.6 µs a row, JSON included, against
 * 12-20). Weighed as appends, the rows that follow every push would take half the room of a
 * saturated gateway's batches (review).
 */
const TRACE_ROWS_PER_APPEND = 4;

/** Most trace rows one operation writes: a commit's weight of them. */
export const TRACE_ROWS_PER_OPERATION = MAX_WEIGHT_PER_COMMIT * TRACE_ROWS_PER_APPEND;

/** One slice of an ack (see SqliteEventStore#ack): what it consumed, up to which seq. */
type AckSlice = Exclude<AckResult, { status: 'acked' }> | (Extract<AckResult, { status: 'acked' }> & { upTo: number });

/**
 * Events an ack or dropOverCap removes in one operation: each is a delete and a trace row, as an
 * append at the cap drops one; a slice weighs as many appends in its commit (see
 * MAX_WEIGHT_PER_COMMIT).
 */
export const REMOVE_SLICE_EVENTS = 1000;

/** Pages a backup copies between two turns of the event loop: better-sqlite3's own default, ~1 ms each. */
const BACKUP_PAGES_PER_STEP = 100;

/** Throws BACKUP_FAILED's error when something is at `file` already, or the path cannot be looked at. */
function refuseExistingTarget(file: string): void {
  let existing: Stats | undefined;
  try {
    existing = lstatSync(file, { throwIfNoEntry: false });
  } catch (error) {
    // Not a missing file, which is no error here: a path through a file, too long, not readable.
    throw new BackupError(file, backupTargetProblem(file, error), { cause: error });
  }
  if (existing === undefined) return;
  throw new BackupError(file, existing.isDirectory() ? 'it is a directory: name a new file in it' : 'the file exists already (a backup overwrites nothing): name a new one');
}

/**
 * Gives the whole copy its name: a hard link, which, unlike a rename, never replaces a file put
 * there since the backup began. Where the file system has no hard links, a rename after one more
 * look (what appears between the two is replaced).
 */
function nameWholeCopy(draft: string, file: string): void {
  try {
    linkSync(draft, file);
  } catch (error) {
    refuseExistingTarget(file);
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error;
    renameSync(draft, file);
  }
}

/** Why the backup's file could not be created, in the operator's words where the errno has them. */
function backupTargetProblem(file: string, error: unknown): string {
  const dir = path.dirname(file);
  switch ((error as NodeJS.ErrnoException).code) {
    case 'ENOENT':
      return `its directory ${dir} does not exist`;
    case 'ENOTDIR':
      return `${dir} is not a directory`;
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return `the gateway's user may not create files in ${dir}`;
    case 'ENAMETOOLONG':
      return 'the path is longer than the file system takes: name a shorter one';
    default:
      return (error as Error).message;
  }
}
