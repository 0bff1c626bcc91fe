/**
 * EventStore on SQLite (better-sqlite3). One connection, held exclusively for the life of the
 * gateway; every operation goes through the group-commit queue, so operations run one at a time,
 * in the order they were called, and settle only once committed.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { CommitQueue, type CommitMetrics } from './commit-queue.js';
import { sqliteCode, StoreClosedError, StoreLockedError, StoreOpenError } from './errors.js';
import { migrate } from './migrations.js';
import type {
  AppendOutcome,
  AppendRequest,
  AppendResult,
  EventRecord,
  EventStore,
  NewEvent,
  ReadOptions,
  ReadResult,
  SessionRecord,
  StoreOptions,
  StoreStats,
} from './types.js';

const EVENT_COLUMNS =
  'event_id AS eventId, session_key AS sessionKey, seq, text, mode, context_key AS contextKey, stored_at AS storedAt';

const SESSION_COLUMNS = `session_key AS sessionKey, agent_id AS agentId, pending, last_seq AS lastSeq,
  last_event_at AS lastEventAt,
  -- The oldest event by seq, found through the primary key; min(stored_at) would read every
  -- pending event of every listed session. The two differ only if the clock stepped back.
  (SELECT stored_at FROM events WHERE events.session_key = sessions.session_key ORDER BY seq LIMIT 1)
    AS oldestPendingAt`;

interface EventRef {
  eventId: string;
  seq: number;
}

function prepareStatements(db: Database.Database) {
  return {
    idempotencyGet: db.prepare<[string], { fingerprint: string; result: string }>(
      'SELECT fingerprint, result FROM idempotency WHERE key = ?',
    ),
    idempotencyPut: db.prepare<[string, string, string, number]>(
      'INSERT INTO idempotency (key, fingerprint, result, created_at) VALUES (?, ?, ?, ?)',
    ),
    session: db.prepare<[string], { lastSeq: number; pending: number }>(
      'SELECT last_seq AS lastSeq, pending FROM sessions WHERE session_key = ?',
    ),
    sessionPut: db.prepare<[string, string, number, number, number]>(
      `INSERT INTO sessions (session_key, agent_id, last_seq, last_event_at, pending) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (session_key) DO UPDATE
       SET last_seq = excluded.last_seq, last_event_at = excluded.last_event_at, pending = excluded.pending`,
    ),
    pendingSet: db.prepare<[number, string]>('UPDATE sessions SET pending = ? WHERE session_key = ?'),
    newest: db.prepare<[string], EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE session_key = ? ORDER BY seq DESC LIMIT 1`,
    ),
    byContext: db.prepare<[string, string], EventRef>(
      'SELECT event_id AS eventId, seq FROM events WHERE session_key = ? AND context_key = ?',
    ),
    oldest: db.prepare<[string, number], EventRef>(
      'SELECT event_id AS eventId, seq FROM events WHERE session_key = ? ORDER BY seq LIMIT ?',
    ),
    insert: db.prepare<EventRecord>(
      `INSERT INTO events (session_key, seq, event_id, text, mode, context_key, stored_at)
       VALUES (@sessionKey, @seq, @eventId, @text, @mode, @contextKey, @storedAt)`,
    ),
    deleteOne: db.prepare<[string, number]>('DELETE FROM events WHERE session_key = ? AND seq = ?'),
    deleteRange: db.prepare<[string, number, number]>(
      'DELETE FROM events WHERE session_key = ? AND seq > ? AND seq <= ?',
    ),
    read: db.prepare<[string, number, number], EventRecord>(
      `SELECT ${EVENT_COLUMNS} FROM events WHERE session_key = ? AND seq > ? ORDER BY seq LIMIT ?`,
    ),
    list: db.prepare<[number], SessionRecord>(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE pending > 0 ORDER BY pending DESC, session_key LIMIT ?`,
    ),
    listByAgent: db.prepare<[string, number], SessionRecord>(
      `SELECT ${SESSION_COLUMNS} FROM sessions WHERE agent_id = ? AND pending > 0
       ORDER BY pending DESC, session_key LIMIT ?`,
    ),
    stats: db.prepare<[], StoreStats>(
      'SELECT count(*) AS sessions, coalesce(sum(pending), 0) AS pending FROM sessions WHERE pending > 0',
    ),
  };
}

/** Opens, locks and migrates the database, or throws StoreLockedError / StoreOpenError. */
function openDatabase(file: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    // The data dir holds the gateway's token as well: private to its owner.
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    // timeout 0: a database locked by another gateway must fail now, not after a busy wait.
    db = new Database(file, { timeout: 0 });
    // With EXCLUSIVE, the first write takes a lock held until close, so a second gateway on the
    // same data dir fails at open instead of interleaving writes (and WAL needs no -shm file).
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      throw new StoreOpenError(file, `SQLite could not switch to WAL mode (got ${String(mode)})`, 'put the data dir on a local disk');
    }
    // FULL: in WAL mode NORMAL may lose the last commits on power loss, and append promises they survive.
    db.pragma('synchronous = FULL');
    db.exec('BEGIN IMMEDIATE; COMMIT');
    migrate(db, file);
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
  if (code === 'SQLITE_NOTADB' || code?.startsWith('SQLITE_CORRUPT')) {
    return new StoreOpenError(
      file,
      `not a switchboard database, or corrupt (${code})`,
      'restore it from a backup, or move it aside to start with an empty store',
      { cause: error },
    );
  }
  const message = error instanceof Error ? error.message : String(error);
  return new StoreOpenError(
    file,
    code === undefined ? message : `${message} (${code})`,
    'check that the data dir is readable and writable by this user',
    { cause: error },
  );
}

export class SqliteEventStore implements EventStore {
  readonly #db: Database.Database;
  readonly #sql: ReturnType<typeof prepareStatements>;
  readonly #queue: CommitQueue;
  readonly #maxPending: number;
  #closing: Promise<void> | undefined;

  /** Opens the store in `file`, creating it and its directory if needed. */
  static open(file: string, options: StoreOptions): SqliteEventStore {
    const max = options.maxPendingPerSession;
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`maxPendingPerSession must be an integer of at least 1, got ${max}`);
    }
    return new SqliteEventStore(openDatabase(file), max);
  }

  private constructor(db: Database.Database, maxPending: number) {
    this.#db = db;
    this.#sql = prepareStatements(db);
    this.#queue = new CommitQueue(db);
    this.#maxPending = maxPending;
  }

  append<R>(request: AppendRequest<R>): Promise<AppendResult<R>> {
    return this.#submit(() => this.#append(request));
  }

  peek(sessionKey: string, options: ReadOptions): Promise<ReadResult> {
    return this.#submit(() => this.#read(sessionKey, options, false));
  }

  drain(sessionKey: string, options: ReadOptions): Promise<ReadResult> {
    return this.#submit(() => this.#read(sessionKey, options, true));
  }

  listSessions(options: { agentId?: string; limit: number }): Promise<{ sessions: SessionRecord[]; more: boolean }> {
    return this.#submit(() => {
      const { agentId, limit } = options;
      const rows =
        agentId === undefined ? this.#sql.list.all(limit + 1) : this.#sql.listByAgent.all(agentId, limit + 1);
      return { sessions: rows.slice(0, limit), more: rows.length > limit };
    });
  }

  stats(): Promise<StoreStats> {
    // An aggregate without GROUP BY always yields exactly one row.
    return this.#submit(() => this.#sql.stats.get()!);
  }

  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Commits so far, for benchmarks: opsCommitted / commits is the mean batch size. */
  storeMetrics(): CommitMetrics {
    return this.#queue.metrics();
  }

  #submit<T>(operation: () => T): Promise<T> {
    if (this.#closing) return Promise.reject(new StoreClosedError());
    return this.#queue.run(operation);
  }

  async #shutdown(): Promise<void> {
    // The queue runs in order, so once this no-op has committed, everything queued before it has.
    // Its failure, if any, was already reported to the operations of its batch.
    await this.#queue.run(() => undefined).catch(() => undefined);
    try {
      this.#db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // Nothing is lost: the WAL stays beside the database and is replayed at the next open.
    }
    this.#db.close();
  }

  #append<R>({ event, idempotency, complete }: AppendRequest<R>): AppendResult<R> {
    if (idempotency) {
      const seen = this.#sql.idempotencyGet.get(idempotency.key);
      if (seen) {
        return seen.fingerprint === idempotency.fingerprint
          ? { status: 'duplicate', result: JSON.parse(seen.result) as R }
          : { status: 'conflict' };
      }
    }
    const now = Date.now();
    const outcome = this.#queueEvent(event, now);
    const result = complete(outcome);
    if (idempotency) {
      this.#sql.idempotencyPut.run(idempotency.key, idempotency.fingerprint, JSON.stringify(result), now);
    }
    return { status: 'stored', result, outcome };
  }

  /** Dedupe, contextKey replacement, insert, cap: the session queue's rules, in that order. */
  #queueEvent(event: NewEvent, now: number): AppendOutcome {
    const { sessionKey } = event;
    const session = this.#sql.session.get(sessionKey) ?? { lastSeq: 0, pending: 0 };
    const newest = session.pending > 0 ? this.#sql.newest.get(sessionKey) : undefined;
    if (newest && newest.text === event.text) {
      const { eventId, seq, storedAt } = newest;
      return { status: 'deduplicated', eventId, seq, storedAt, depth: session.pending, replaced: null, dropped: [] };
    }

    let pending = session.pending;
    const replaced = event.contextKey === null ? undefined : this.#sql.byContext.get(sessionKey, event.contextKey);
    if (replaced) {
      this.#sql.deleteOne.run(sessionKey, replaced.seq);
      pending--;
    }

    const seq = session.lastSeq + 1;
    const eventId = randomUUID();
    const { text, mode, contextKey } = event;
    this.#sql.insert.run({ eventId, sessionKey, seq, text, mode, contextKey, storedAt: now });
    pending++;

    const dropped = pending > this.#maxPending ? this.#sql.oldest.all(sessionKey, pending - this.#maxPending) : [];
    const lastDropped = dropped.at(-1);
    if (lastDropped) {
      this.#sql.deleteRange.run(sessionKey, 0, lastDropped.seq);
      pending -= dropped.length;
    }

    this.#sql.sessionPut.run(sessionKey, event.agentId, seq, now, pending);
    return {
      status: replaced ? 'replaced' : 'queued',
      eventId,
      seq,
      storedAt: now,
      depth: pending,
      replaced: replaced ?? null,
      dropped,
    };
  }

  #read(sessionKey: string, { after = 0, limit }: ReadOptions, consume: boolean): ReadResult {
    const rows = this.#sql.read.all(sessionKey, after, limit + 1);
    const events = rows.slice(0, limit);
    let depth = this.#sql.session.get(sessionKey)?.pending ?? 0;
    const last = events.at(-1);
    if (consume && last) {
      // The events read are exactly the pending ones in (after, last.seq]: delete that range.
      this.#sql.deleteRange.run(sessionKey, after, last.seq);
      depth -= events.length;
      this.#sql.pendingSet.run(depth, sessionKey);
    }
    return { events, depth, more: rows.length > limit };
  }
}
