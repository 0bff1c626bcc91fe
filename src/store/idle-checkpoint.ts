/**
 * Folds the write-ahead log back into the database, and cuts it to nothing, once the store has
 * committed nothing for IDLE_CHECKPOINT_MS. SQLite's own checkpoints come every
 * WAL_AUTOCHECKPOINT_PAGES (~40 MiB of WAL), which a steady load is faster with; but a gateway
 * taking a few events a minute reached that size too (each commit writes whole pages: 50-120 KB an
 * event), and on a small disk its WAL took the last of the room, and took again whatever room was
 * made (QA). A load that never pauses keeps its large WAL, as before.
 *
 * A batch that failed (a full disk) calls for a checkpoint at the next tick whether or not others
 * follow: clients retrying would otherwise keep the store from ever looking idle, while the pages
 * folded back are what gives the disk its room again.
 */
import type { TransactionObserver } from './commit-queue.js';

export const IDLE_CHECKPOINT_MS = 1_000;

export class IdleCheckpoint implements TransactionObserver {
  readonly #checkpoint: () => void;
  readonly #idleMs: number;
  #timer: NodeJS.Timeout | undefined;
  #lastBatchAt = Number.NEGATIVE_INFINITY;
  #failed = false;
  #stopped = false;

  /** `checkpoint` runs outside any transaction; `idleMs` is for tests. */
  constructor(checkpoint: () => void, idleMs = IDLE_CHECKPOINT_MS) {
    this.#checkpoint = checkpoint;
    this.#idleMs = idleMs;
  }

  batchBegun(): void {}
  operationStart(): void {}
  operationRolledBack(): void {}
  beforeCommit(): void {}

  batchCommitted(): void {
    this.#batchEnded();
  }

  batchRolledBack(): void {
    this.#failed = true;
    this.#batchEnded();
  }

  /** No checkpoint after this one: the store closes, and folds the WAL back itself. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #batchEnded(): void {
    this.#lastBatchAt = performance.now();
    if (!this.#stopped) this.#timer ??= this.#arm(this.#idleMs);
  }

  // unref: a checkpoint to come must not keep the process alive.
  #arm(ms: number): NodeJS.Timeout {
    return setTimeout(() => this.#due(), ms).unref();
  }

  #due(): void {
    this.#timer = undefined;
    const idleFor = performance.now() - this.#lastBatchAt;
    if (!this.#failed && idleFor < this.#idleMs) {
      this.#timer = this.#arm(this.#idleMs - idleFor);
      return;
    }
    this.#failed = false;
    this.#checkpoint();
  }
}
