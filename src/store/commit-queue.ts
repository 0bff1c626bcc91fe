/**
 * Group commit: every operation queued before the next flush shares one transaction, so
 * durability costs one fsync per batch instead of one per event. A small batch first waits, briefly,
 * for the callers the last commit answered (see GROUP_TARGET). An operation that throws takes
 * back only its own changes: the batch then runs again, each operation in a savepoint of its own
 * (see #runAll), so operations must be safe to run twice (their effects outside the database are
 * the observer's to take back).
 *
 * Not every write needs the fsync. An operation is durable (the default) or not: a batch with at
 * least one durable operation commits with `synchronous = FULL`, a batch of only non-durable ones
 * (trace rows, pruning) with `synchronous = NORMAL`. In WAL mode NORMAL writes the commit to the
 * WAL without syncing it: the commit survives a crash of the process (the OS has the pages), and
 * after a power loss the database is still consistent (WAL frames carry checksums, so recovery
 * stops at the last whole commit), but the commit itself may be lost. That is acceptable for
 * diagnostics, never for an answered event. Durable commits lose nothing by it: the WAL is written
 * in order, so the fsync of the next FULL commit also covers the frames of every NORMAL commit
 * before it, and a durable commit never depends on a later one.
 */
import type Database from 'better-sqlite3';
import { sqliteCode, StoreUnavailableError } from './errors.js';

/**
 * Most work in one transaction, counted in operations, each of them as its `weight` (see
 * RunOptions). A flush blocks the event loop while it runs, and a failed commit rejects the whole
 * batch: 1000 appends take a few milliseconds, which bounds both.
 */
export const MAX_WEIGHT_PER_COMMIT = 1000;

/**
 * A batch smaller than this waits (at most GROUP_WAIT_MS) for the callers the last commit answered
 * to send their next operations, so they share its commit. Callers that each wait for their answer
 * before sending again (one call in flight per connection) otherwise split into groups that take
 * turns: while one group's batch commits, the other's arrives and forms the next batch, and every
 * commit (its fsync and its page writes) is shared by half of them. With 16 such callers, waiting
 * for all of them gave one batch of ~15 instead of two of ~8, and 14-23% more calls per second. 64
 * appends already share a commit's fixed cost well, so a larger batch goes at once.
 */
export const GROUP_TARGET = 64;

/**
 * The longest a batch waits for GROUP_TARGET's callers, counted from the answers of the commit
 * before it (Node's timers go no finer than a millisecond, so it may be up to one more). Callers
 * that are not coming back (a CLI call, one event now and then) cost at most that, once: the batch
 * after the wait expects only the callers it answered.
 */
export const GROUP_WAIT_MS = 1;

/** Codes (and their extended forms) that mean the storage failed, not the operation. */
const STORAGE_FAILURES = [
  'SQLITE_FULL',
  'SQLITE_IOERR',
  'SQLITE_CORRUPT',
  'SQLITE_NOTADB',
  'SQLITE_READONLY',
  'SQLITE_CANTOPEN',
  'SQLITE_BUSY',
  'SQLITE_NOMEM',
];

function isStorageFailure(error: unknown): boolean {
  const code = sqliteCode(error);
  return code !== undefined && STORAGE_FAILURES.some((failure) => code.startsWith(failure));
}

/**
 * PRAGMA synchronous levels, as the pragma reads them back (and accepts them). SQLite refuses to
 * change the level inside a transaction, so it is set between batches, and only when it changes.
 */
const SYNCHRONOUS = { normal: 1, full: 2 } as const;

export interface RunOptions {
  /**
   * Whether the operation's changes must be on disk (fsync) before it settles. Give false only
   * for writes that may be lost on power loss (diagnostics); they still survive a process crash.
   * @default true
   */
  durable?: boolean;
  /**
   * The operation changes nothing that lasts: it reads, perhaps after bringing rows up to date
   * that it could do without committing. When its batch fails as a whole (a full disk, an I/O
   * error), it runs again with the batch's other reads, in a transaction that is rolled back
   * whatever happens, and settles with that run: what a full disk cannot take must not hide what
   * is already stored (see #readAgain).
   * @default false
   */
  readOnly?: boolean;
  /**
   * What the operation costs, in appends, read when its batch is formed: one that writes many
   * rows (a heartbeat's trace steps for every event of its interval) counts each, so it cannot
   * stall the event loop for the length of many batches.
   * @default () => 1
   */
  weight?: () => number;
}

/** How the operations of a batch ran: how to settle each, or why the whole batch failed. */
type BatchRun = { settlers: Array<() => void>; succeeded: number } | { failure: unknown };

interface QueuedOp {
  run(): unknown;
  durable: boolean;
  readOnly: boolean;
  weight: (() => number) | undefined;
  resolve(value: unknown): void;
  reject(reason: unknown): void;
}

/**
 * Told where each batch's transaction stands, by state kept in memory alongside the database (the
 * store's session cache) that must be taken back with the writes it mirrors, and that may hold
 * writes back until the batch commits. Each call comes before anything else runs.
 */
export interface TransactionObserver {
  /** The batch's transaction has begun, before its first operation: a throw aborts the batch. */
  batchBegun(): void;
  /** An operation is about to run (in a savepoint of its own when the batch runs guarded). */
  operationStart(): void;
  /** That operation threw and its savepoint was rolled back; the batch goes on. */
  operationRolledBack(): void;
  /**
   * The batch's operations have run and its transaction is still open: a throw aborts the batch.
   * `writes`: whether any of them may have changed something (false for a batch of reads).
   */
  beforeCommit(writes: boolean): void;
  /** The batch's transaction committed: none of its changes can be taken back any more. */
  batchCommitted(): void;
  /**
   * The batch's transaction was rolled back, or never began: none of its changes happened. It
   * may then run again, guarded, from its first operation.
   */
  batchRolledBack(): void;
}

export const NO_OBSERVER: TransactionObserver = {
  batchBegun: () => undefined,
  operationStart: () => undefined,
  operationRolledBack: () => undefined,
  beforeCommit: () => undefined,
  batchCommitted: () => undefined,
  batchRolledBack: () => undefined,
};

/** One observer that tells each of `observers` in turn, in the order given. */
export function observeAll(...observers: TransactionObserver[]): TransactionObserver {
  const each = (call: (observer: TransactionObserver) => void) => () => {
    for (const observer of observers) call(observer);
  };
  return {
    batchBegun: each((observer) => observer.batchBegun()),
    operationStart: each((observer) => observer.operationStart()),
    operationRolledBack: each((observer) => observer.operationRolledBack()),
    beforeCommit: (writes) => {
      for (const observer of observers) observer.beforeCommit(writes);
    },
    batchCommitted: each((observer) => observer.batchCommitted()),
    batchRolledBack: each((observer) => observer.batchRolledBack()),
  };
}

/** Whether writes go through: what an operator asks first of a store that answers STORE_UNAVAILABLE. */
export interface WriteHealth {
  /** When batches that write began to fail (ms since the epoch); undefined once one commits again. */
  failingSince: number | undefined;
  /** Why the last of them failed, while they fail. */
  failure: string | undefined;
}

export interface CommitQueueOptions {
  /** For tests, which need a wait longer than a loaded machine's stalls. @default GROUP_WAIT_MS */
  groupWaitMs?: number;
  /** Told when a batch that writes commits after batches failed (since `failedSince`, ms since the epoch): the log says when a failure ended, not only that it began. */
  onWritesRecovered?: (failedSince: number) => void;
}

export interface CommitMetrics {
  /** Transactions committed. */
  commits: number;
  /** Operations that succeeded inside those transactions. */
  opsCommitted: number;
  /** Of the commits, those made with synchronous = FULL (the ones that fsync). */
  durableCommits: number;
}

export class CommitQueue {
  readonly #db: Database.Database;
  readonly #begin: Database.Statement;
  readonly #commit: Database.Statement;
  readonly #rollback: Database.Statement;
  readonly #inSavepoint: (run: () => unknown) => unknown;
  readonly #observer: TransactionObserver;
  readonly #queue: QueuedOp[] = [];
  readonly #metrics: CommitMetrics = { commits: 0, opsCommitted: 0, durableCommits: 0 };
  #scheduled = false;
  readonly #groupWaitMs: number;
  /** The wait for the callers just answered (see GROUP_TARGET), while it runs. */
  #groupWait: NodeJS.Timeout | undefined;
  /** Operations the next batch waits for: those queued when the last commit answered, plus its durable ones' callers. */
  #expected = 0;
  /** When the last commit's operations were settled (performance.now()). */
  #answeredAt = Number.NEGATIVE_INFINITY;
  /** The connection's synchronous level, as last set (or found at construction). */
  #synchronous: number;
  #health: WriteHealth = { failingSince: undefined, failure: undefined };
  readonly #onWritesRecovered: (failedSince: number) => void;
  /** Rows changed since the connection opened (SQLite's total_changes()). */
  readonly #totalChanges: () => number;

  constructor(db: Database.Database, observer: TransactionObserver = NO_OBSERVER, options: CommitQueueOptions = {}) {
    this.#db = db;
    this.#observer = observer;
    this.#groupWaitMs = options.groupWaitMs ?? GROUP_WAIT_MS;
    this.#onWritesRecovered = options.onWritesRecovered ?? (() => {});
    this.#begin = db.prepare('BEGIN IMMEDIATE');
    this.#commit = db.prepare('COMMIT');
    this.#rollback = db.prepare('ROLLBACK');
    const totalChanges = db.prepare<[], number>('SELECT total_changes()').pluck();
    this.#totalChanges = () => totalChanges.get()!;
    this.#synchronous = db.pragma('synchronous', { simple: true }) as number;
    // Called while the batch's transaction is open, better-sqlite3 wraps each call in a SAVEPOINT.
    this.#inSavepoint = db.transaction((run: () => unknown) => run());
  }

  /**
   * Runs `operation` in the next batch; settles only once that batch has committed or failed. It
   * may run twice (see #runAll): only its last run's changes and value count.
   */
  run<T>(operation: () => T, options?: RunOptions): Promise<T> {
    const durable = options?.durable ?? true;
    const readOnly = options?.readOnly ?? false;
    const weight = options?.weight;
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ run: operation, durable, readOnly, weight, resolve, reject });
      this.#schedule();
    });
  }

  metrics(): CommitMetrics {
    return { ...this.#metrics };
  }

  writeHealth(): WriteHealth {
    return { ...this.#health };
  }

  #schedule(): void {
    if (this.#scheduled) {
      if (this.#groupWait && this.#queue.length >= this.#expected) this.#flushSoon();
      return;
    }
    this.#scheduled = true;
    const waitLeft = this.#answeredAt + this.#groupWaitMs - performance.now();
    if (this.#queue.length < this.#expected && waitLeft > 0) {
      this.#groupWait = setTimeout(() => this.#flushSoon(), waitLeft);
    } else {
      this.#flushSoon();
    }
  }

  /**
   * setImmediate rather than a microtask: it runs after this loop turn's I/O callbacks, so
   * requests read from many sockets at once land in the same batch.
   */
  #flushSoon(): void {
    clearTimeout(this.#groupWait);
    this.#groupWait = undefined;
    setImmediate(() => this.#flush());
  }

  #flush(): void {
    const batch = this.#queue.splice(0, this.#batchLength());
    const settlers = this.#execute(batch);
    this.#scheduled = false;
    // Only durable operations have callers waiting to send again: the rest are the store's own
    // (trace writes, pruning).
    let callers = 0;
    for (const op of batch) if (op.durable) callers++;
    this.#expected = Math.min(GROUP_TARGET, this.#queue.length + callers);
    this.#answeredAt = performance.now();
    if (this.#queue.length > 0) this.#schedule();
    for (const settle of settlers) settle();
  }

  /** How many of the queued operations the next batch takes: at least one, however heavy. */
  #batchLength(): number {
    let weight = 0;
    let length = 0;
    for (const op of this.#queue) {
      weight += op.weight?.() ?? 1;
      if (length > 0 && weight > MAX_WEIGHT_PER_COMMIT) break;
      length++;
    }
    return length;
  }

  /** Runs the batch in one transaction and returns how to settle each operation, in order. */
  #execute(batch: QueuedOp[]): Array<() => void> {
    const durable = batch.some((op) => op.durable);
    // Read only while writes fail: a batch that commits without changing a row (an append refused
    // for want of room, an ack of nothing) says nothing of whether writes go through (review).
    const changesBefore = this.#health.failingSince === undefined ? 0 : this.#totalChanges();
    const ran = this.#runAll(batch, durable, false) ?? this.#runAll(batch, durable, true);
    if ('failure' in ran) return this.#abort(batch, ran.failure);
    try {
      this.#observer.beforeCommit(batch.some((op) => !op.readOnly));
      this.#commit.run();
    } catch (error) {
      return this.#abort(batch, error);
    }
    this.#observer.batchCommitted();
    const { failingSince } = this.#health;
    if (failingSince !== undefined && this.#totalChanges() > changesBefore) {
      this.#health = { failingSince: undefined, failure: undefined };
      this.#onWritesRecovered(failingSince);
    }
    this.#metrics.commits++;
    if (durable) this.#metrics.durableCommits++;
    this.#metrics.opsCommitted += ran.succeeded;
    return ran.settlers;
  }

  /**
   * Opens the batch's transaction and runs its operations in it, `guarded` each in a savepoint of
   * its own. Unguarded first: a savepoint per operation cost ~2.4 of the ~15 µs an append takes,
   * and operations almost never throw. When one does, its changes cannot be taken back alone:
   * the transaction is rolled back and undefined returned, for the batch to run again guarded.
   */
  #runAll(batch: QueuedOp[], durable: boolean, guarded: true): BatchRun;
  #runAll(batch: QueuedOp[], durable: boolean, guarded: false): BatchRun | undefined;
  #runAll(batch: QueuedOp[], durable: boolean, guarded: boolean): BatchRun | undefined {
    try {
      this.#setSynchronous(durable ? SYNCHRONOUS.full : SYNCHRONOUS.normal);
      this.#begin.run();
      this.#observer.batchBegun();
    } catch (error) {
      return { failure: error };
    }
    const settlers: Array<() => void> = [];
    let succeeded = 0;
    for (const op of batch) {
      this.#observer.operationStart();
      try {
        const value = guarded ? this.#inSavepoint(op.run) : op.run();
        settlers.push(() => op.resolve(value));
        succeeded++;
      } catch (error) {
        // SQLITE_FULL, SQLITE_IOERR and a few others roll back the whole transaction, not just the
        // savepoint: the earlier operations of the batch are gone as well, and the next savepoint
        // would silently run (and commit) on its own.
        if (!this.#db.inTransaction) return { failure: error };
        if (!guarded) {
          this.#rollBack();
          return undefined;
        }
        this.#observer.operationRolledBack();
        const reason = isStorageFailure(error) ? new StoreUnavailableError(error) : error;
        settlers.push(() => op.reject(reason));
      }
    }
    return { settlers, succeeded };
  }

  /**
   * Outside a transaction only. A failure leaves the level unknown: the next batch sets it again.
   * Not a prepared statement: SQLite applies `PRAGMA synchronous = ...` when it compiles the
   * statement, and running a prepared one again does nothing.
   */
  #setSynchronous(level: number): void {
    if (this.#synchronous === level) return;
    this.#synchronous = -1;
    this.#db.pragma(`synchronous = ${level}`);
    this.#synchronous = level;
  }

  #abort(batch: QueuedOp[], cause: unknown): Array<() => void> {
    const failure = new StoreUnavailableError(cause);
    // Before the rollback, which the observers are told of: they may ask whether writes fail. A
    // batch of reads that failed says nothing of writes.
    if (batch.some((op) => !op.readOnly)) this.#health = { failingSince: this.#health.failingSince ?? Date.now(), failure: failure.message };
    this.#rollBack();
    const reads = this.#readAgain(batch.filter((op) => op.readOnly), failure);
    return batch.map((op) => reads.get(op) ?? (() => op.reject(failure)));
  }

  /**
   * Runs the reads of a failed batch again, after the batch was rolled back: they see what is
   * committed, never the writes that failed. One transaction for all of them (each in a savepoint,
   * as a guarded batch runs; a new one after a failure that rolls the whole of it back), so what it
   * costs to begin (the session cache brings lagging rows up to date) is paid once, and rolled back
   * even when they succeed: writes made on the way need no room on disk unless they outgrow the
   * page cache. A read that fails again gets the batch's failure when the storage is what failed,
   * else its own error, as in a batch that commits.
   */
  #readAgain(reads: QueuedOp[], failure: StoreUnavailableError): Map<QueuedOp, () => void> {
    const settlers = new Map<QueuedOp, () => void>();
    let next = 0;
    while (next < reads.length) {
      try {
        this.#begin.run();
        this.#observer.batchBegun();
        for (; next < reads.length; next++) {
          const op = reads[next]!;
          this.#observer.operationStart();
          try {
            const value = this.#inSavepoint(op.run);
            settlers.set(op, () => op.resolve(value));
          } catch (error) {
            const reason = isStorageFailure(error) ? failure : error;
            settlers.set(op, () => op.reject(reason));
            // As in #runAll: a storage failure may have rolled the whole transaction back; the
            // reads after this one start again in a new one.
            if (!this.#db.inTransaction) {
              next++;
              break;
            }
            this.#observer.operationRolledBack();
          }
        }
      } catch {
        // BEGIN failed, or the observer did: the reads not run yet get the batch's failure.
        next = reads.length;
      } finally {
        this.#rollBack();
      }
    }
    return settlers;
  }

  /** Rolls back the batch's transaction, if one is open, and tells the observer. */
  #rollBack(): void {
    if (this.#db.inTransaction) {
      try {
        this.#rollback.run();
      } catch {
        // The batch is rejected with its cause, the failure worth reporting. A connection still
        // stuck in the transaction fails the next BEGIN, which lands in #abort and rolls back again.
      }
    }
    this.#observer.batchRolledBack();
  }
}
