/**
 * The store's in-memory copy of the sessions it last touched (see SessionCache), kept in step
 * with the commit queue's transactions.
 */
import type { TransactionObserver } from './commit-queue.js';
import type { EventRecord } from './types.js';

/**
 * Sessions whose state the store keeps in memory (least recently used go first), so an append
 * reads neither the sessions row nor the newest event for dedupe. Busy sessions are what matter:
 * a few thousand cover them, and bound the memory to about SESSION_CACHE_SIZE newest texts of at
 * most NEWEST_TEXT_CACHE_LIMIT UTF-16 units (8 MiB). Sessions changed in the running batch stay
 * on top of that until it commits: at most MAX_OPS_PER_COMMIT (commit-queue.ts) of them.
 */
export const SESSION_CACHE_SIZE = 4096;

/**
 * Longest newest-event text the session cache keeps, in UTF-16 units. A longer one is read back
 * from the table when the next append needs it: rare, and cheap next to the text itself.
 */
export const NEWEST_TEXT_CACHE_LIMIT = 1024;

/** What dedupe compares an append with. */
export type NewestEvent = Pick<EventRecord, 'eventId' | 'seq' | 'storedAt' | 'text'>;

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

/** How to take back one change of the cache: the entry and its unwritten mark as they were. */
interface CacheChange {
  sessionKey: string;
  state: SessionState | undefined;
  unwritten: boolean;
}

/**
 * The sessions the store last read or changed, least recently used first, and the one place that
 * writes the sessions table. Every append changes its session's row, and under load a batch holds
 * a few appends per session: a change is kept here, unwritten, and written once per batch, before
 * it commits (or before anything reads the table). Each write of `pending` moves the row in both
 * partial indexes: writing the row at every append cost ~2 of the ~21 µs an append took (700
 * appends over 200 sessions per batch), and ~3% of the gateway's durable throughput.
 *
 * Authoritative because the store alone writes the database (locking_mode EXCLUSIVE), and kept in
 * step with the transaction as the commit queue reports it: every change an operation makes here
 * is taken back if its savepoint is, and the whole cache is dropped if the batch is. States are
 * never changed in place, so taking a change back is putting the old state back. An unwritten
 * state is the only copy of the session's row until it is written, and of a new session's id,
 * which its events already carry: never evicted.
 */
export class SessionCache implements TransactionObserver {
  readonly #entries = new Map<string, SessionState>();
  readonly #unwritten = new Set<string>();
  /** The running operation's changes, oldest first. */
  readonly #changes: CacheChange[] = [];
  readonly #writeRow: (sessionKey: string, row: SessionRow) => void;

  constructor(writeRow: (sessionKey: string, row: SessionRow) => void) {
    this.#writeRow = writeRow;
  }

  get(sessionKey: string): SessionState | undefined {
    const state = this.#entries.get(sessionKey);
    if (state) {
      // A Map iterates in insertion order: re-inserting makes this entry the most recently used.
      this.#entries.delete(sessionKey);
      this.#entries.set(sessionKey, state);
    }
    return state;
  }

  /** Keeps a session that was not in the cache, as read from its row. */
  load(sessionKey: string, state: SessionState): void {
    this.#put(sessionKey, state, false);
  }

  /** Records the session's new state; its row is written by writeBack(). */
  update(sessionKey: string, state: SessionState): void {
    this.#put(sessionKey, state, true);
  }

  /** Writes every unwritten row: before the batch commits, and before anything reads the table. */
  writeBack(): void {
    for (const sessionKey of this.#unwritten) {
      const state = this.#entries.get(sessionKey)!;
      this.#writeRow(sessionKey, state);
      this.#changes.push({ sessionKey, state, unwritten: true });
    }
    this.#unwritten.clear();
  }

  operationStart(): void {
    this.#changes.length = 0;
  }

  operationRolledBack(): void {
    for (let i = this.#changes.length - 1; i >= 0; i--) {
      const { sessionKey, state, unwritten } = this.#changes[i]!;
      if (state) this.#entries.set(sessionKey, state);
      else this.#entries.delete(sessionKey);
      if (unwritten) this.#unwritten.add(sessionKey);
      else this.#unwritten.delete(sessionKey);
    }
    this.#changes.length = 0;
  }

  beforeCommit(): void {
    this.writeBack();
  }

  batchRolledBack(): void {
    this.#entries.clear();
    this.#unwritten.clear();
    this.#changes.length = 0;
  }

  #put(sessionKey: string, state: SessionState, unwritten: boolean): void {
    this.#changes.push({ sessionKey, state: this.#entries.get(sessionKey), unwritten: this.#unwritten.has(sessionKey) });
    this.#entries.delete(sessionKey);
    this.#entries.set(sessionKey, state);
    if (unwritten) this.#unwritten.add(sessionKey);
    if (this.#entries.size > SESSION_CACHE_SIZE) this.#evictOne();
  }

  /**
   * Drops the least recently used written entry. Not a change to take back: its row holds the
   * same, and if the running operation wrote that row, writeBack's change puts the entry back.
   */
  #evictOne(): void {
    for (const sessionKey of this.#entries.keys()) {
      if (!this.#unwritten.has(sessionKey)) {
        this.#entries.delete(sessionKey);
        return;
      }
    }
  }
}
