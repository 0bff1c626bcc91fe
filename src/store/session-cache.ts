/**
 * The store's in-memory copy of the sessions it last touched (see SessionCache), kept in step
 * with the commit queue's transactions.
 */
import type { TransactionObserver } from './commit-queue.js';
import type { EventRecord } from './types.js';

/**
 * Sessions whose state the store keeps in memory, so an append reads neither the sessions row nor
 * the newest event for dedupe. Busy sessions are what matter: a few thousand cover them, and bound
 * the memory to about SESSION_CACHE_SIZE newest texts of at most NEWEST_TEXT_CACHE_LIMIT UTF-16
 * units (8 MiB). The SESSION_CACHE_SIZE / 2 used last are always kept; sessions whose rows lag
 * stay on top of that until written (see SessionCache).
 */
export const SESSION_CACHE_SIZE = 4096;

/**
 * Longest newest-event text the session cache keeps, in UTF-16 units. A longer one is read back
 * from the table when the next append needs it: rare, and cheap next to the text itself.
 */
export const NEWEST_TEXT_CACHE_LIMIT = 1024;

/** What dedupe compares an append with. */
export type NewestEvent = Pick<EventRecord, 'eventId' | 'seq' | 'storedAt' | 'text' | 'contextKey'>;

/** A session's row. */
export interface SessionRow {
  /** Names the session in the events table; given when its first event is appended. */
  readonly id: number;
  readonly agentId: string;
  readonly lastSeq: number;
  readonly lastEventAt: number;
  readonly pending: number;
}

/** A session's row as it stands in the running batch, plus its newest pending event when known. */
export interface SessionState extends SessionRow {
  /** Undefined when not known (consumed, or too long to keep): read from the table when needed. */
  readonly newest: NewestEvent | undefined;
}

/**
 * How long a session's row may lag the appends made to it. Only appends wait: a new session's row
 * and the row of a session whose events were acked or drained are written in the same batch (see
 * SessionCache). Once this has passed since every row was last written, the next batch writes all.
 */
export const DEFERRED_ROWS_MAX_AGE_MS = 1_000;

/** Most rows left lagging: past this, the next batch writes all of them (and the cache may evict). */
export const DEFERRED_ROWS_MAX = 1_024;

/** How to take back one change of the cache: the entry and its marks as they were. */
interface CacheChange {
  sessionKey: string;
  state: SessionState | undefined;
  unwritten: boolean;
  due: boolean;
}

/** What the cache does with the database: write one session's row, or bring lagging rows up to date. */
export interface SessionRows {
  write(sessionKey: string, row: SessionRow): void;
  /**
   * Brings every row up to date with its session's events, as SessionCache's rule allows: see
   * `#reconcileSessions` in sqlite.ts. After a crash, or a batch rolled back, rows may lag.
   */
  reconcile(): void;
}

/**
 * The sessions the store last read or changed (see SESSION_CACHE_SIZE), and the one place that
 * writes the sessions table.
 *
 * A session's row (last seq, pending count, last event time) changes with every append, but is
 * only written when it must be: an append's change is kept here, unwritten, and written when
 * something reads the table (list, stats), when the store closes, when DEFERRED_ROWS_MAX_AGE_MS
 * have passed or DEFERRED_ROWS_MAX rows lag. Writing every changed row in every batch cost 6-12%
 * of the gateway's durable throughput at 16 connections × 64 calls in flight (~200 rows a batch,
 * each moving in both partial indexes), and 13-17% at one call in flight (a commit per ~15 calls).
 *
 * A row must never lag in a way its events cannot repair, so two kinds of change are written in
 * the batch that makes them ("due"): a new session's row (its events carry its id, and only the
 * row names it), and the row of a session whose events were consumed (acked or drained), which
 * may take its newest events, and with them the only sign of its last seq, out of the events
 * table. What remains are appends, some of which replaced or dropped older events; each leaves
 * its own event pending, newer than the row's last seq until the row is written (or until the
 * event is consumed, which writes it). So the events table shows every row that lags, and how
 * far: its newest event gives the last seq, and its pending events the count. The store
 * reconciles rows from it when it opens (after a crash they may lag) and after a batch is rolled
 * back (which drops this cache, lagging states included). That drops and replacements are not due
 * matters at the cap, where every append drops an event: when they were, the bench's batches of
 * 520 appends over 200 sessions each wrote ~200 rows.
 *
 * Authoritative because the store alone writes the database (locking_mode EXCLUSIVE), and kept in
 * step with the transaction as the commit queue reports it: every change an operation makes here
 * is taken back if its savepoint is, and the cache is dropped, to be reconciled, if the batch is.
 * States are never changed in place, so taking a change back is putting the old state back. An
 * unwritten state is newer than its row: never evicted.
 */
export class SessionCache implements TransactionObserver {
  /**
   * The entries used since the last rotation, and those used in the generation before it; a key is
   * in one of them at most. Two generations approximate least-recently-used order at the cost of
   * one lookup per hit: moving an entry to the end of one Map on every use (exact LRU, two deletes
   * and two inserts per append) took ~1.5 µs of the ~30 a call costs the gateway at 16 connections
   * × 64 calls in flight.
   */
  #recent = new Map<string, SessionState>();
  #older = new Map<string, SessionState>();
  readonly #unwritten = new Set<string>();
  /** Of the unwritten, those whose rows must be written in the running batch. */
  readonly #due = new Set<string>();
  /** The running operation's changes, oldest first. */
  readonly #changes: CacheChange[] = [];
  readonly #rows: SessionRows;
  /** The rows may lag their events beyond what this cache knows: reconcile before the next batch. */
  #stale = true;
  /** Milliseconds on a monotonic clock; a test's own, so a stalled machine cannot age the rows. */
  readonly #now: () => number;
  /** When every row was last written (#now()). */
  #allWrittenAt: number;
  /** Entries used between two rotations of the generations (see #rotate): half the cache's size. */
  readonly #generationSize: number;

  constructor(rows: SessionRows, now: () => number = () => performance.now(), size = SESSION_CACHE_SIZE) {
    this.#rows = rows;
    this.#now = now;
    this.#allWrittenAt = now();
    this.#generationSize = Math.max(1, Math.floor(size / 2));
  }

  get(sessionKey: string): SessionState | undefined {
    const recent = this.#recent.get(sessionKey);
    if (recent) return recent;
    const older = this.#older.get(sessionKey);
    if (older) this.#use(sessionKey, older);
    return older;
  }

  /** Keeps a session that was not in the cache, as read from its row. */
  load(sessionKey: string, state: SessionState): void {
    this.#put(sessionKey, state, false, false);
  }

  /**
   * Records the session's new state. Its row is written before the batch commits when `due` (a
   * new session, or events acked or drained), else by a later writeBack().
   */
  update(sessionKey: string, state: SessionState, due: boolean): void {
    this.#put(sessionKey, state, true, due || this.#due.has(sessionKey));
  }

  /** Writes every unwritten row: before anything reads the table, and at close. */
  writeBack(): void {
    for (const sessionKey of this.#unwritten) this.#write(sessionKey);
    this.#unwritten.clear();
    this.#due.clear();
    this.#allWrittenAt = this.#now();
  }

  batchBegun(): void {
    if (!this.#stale) return;
    this.#rows.reconcile();
    this.#stale = false;
  }

  operationStart(): void {
    this.#changes.length = 0;
  }

  operationRolledBack(): void {
    for (let i = this.#changes.length - 1; i >= 0; i--) {
      const { sessionKey, state, unwritten, due } = this.#changes[i]!;
      // Put back, not used: taking changes back never turns the generations over.
      if (state) this.#setRecent(sessionKey, state);
      else this.#remove(sessionKey);
      mark(this.#unwritten, sessionKey, unwritten);
      mark(this.#due, sessionKey, due);
    }
    this.#changes.length = 0;
  }

  beforeCommit(): void {
    if (this.#unwritten.size > DEFERRED_ROWS_MAX || this.#now() - this.#allWrittenAt >= DEFERRED_ROWS_MAX_AGE_MS) {
      this.writeBack();
      return;
    }
    for (const sessionKey of this.#due) {
      this.#write(sessionKey);
      this.#unwritten.delete(sessionKey);
    }
    this.#due.clear();
  }

  batchCommitted(): void {}

  batchRolledBack(): void {
    this.#recent.clear();
    this.#older.clear();
    this.#unwritten.clear();
    this.#due.clear();
    this.#changes.length = 0;
    this.#stale = true;
  }

  #write(sessionKey: string): void {
    const state = this.#state(sessionKey)!;
    this.#rows.write(sessionKey, state);
    this.#changes.push({ sessionKey, state, unwritten: true, due: this.#due.has(sessionKey) });
  }

  #put(sessionKey: string, state: SessionState, unwritten: boolean, due: boolean): void {
    this.#changes.push({
      sessionKey,
      state: this.#state(sessionKey),
      unwritten: this.#unwritten.has(sessionKey),
      due: this.#due.has(sessionKey),
    });
    if (unwritten) this.#unwritten.add(sessionKey);
    if (due) this.#due.add(sessionKey);
    this.#use(sessionKey, state);
  }

  #state(sessionKey: string): SessionState | undefined {
    return this.#recent.get(sessionKey) ?? this.#older.get(sessionKey);
  }

  /** Makes `state` the session's entry, among the recently used, and rotates when they are many. */
  #use(sessionKey: string, state: SessionState): void {
    this.#setRecent(sessionKey, state);
    if (this.#recent.size >= this.#generationSize) this.#rotate();
  }

  #setRecent(sessionKey: string, state: SessionState): void {
    this.#older.delete(sessionKey);
    this.#recent.set(sessionKey, state);
  }

  #remove(sessionKey: string): void {
    this.#recent.delete(sessionKey);
    this.#older.delete(sessionKey);
  }

  /**
   * The older generation's written entries go, and the recent ones become the older. Dropping an
   * entry is not a change to take back: its row holds the same, and if the running operation
   * wrote that row, writeBack's change puts the entry back. An unwritten entry is newer than its
   * row: it moves to the new older generation instead, until a later rotation finds it written.
   */
  #rotate(): void {
    const dropped = this.#older;
    this.#older = this.#recent;
    this.#recent = new Map();
    for (const [sessionKey, state] of dropped) if (this.#unwritten.has(sessionKey)) this.#older.set(sessionKey, state);
  }
}

function mark(set: Set<string>, key: string, marked: boolean): void {
  if (marked) set.add(key);
  else set.delete(key);
}
