/**
 * Calls for the write-ahead log to be folded back into the database once the store has committed
 * no write for IDLE_CHECKPOINT_MS. SQLite's own checkpoints come every WAL_AUTOCHECKPOINT_PAGES
 * (~40 MiB of WAL), which a steady load is faster with; but a gateway taking a few events a minute
 * reached that size too (each commit writes whole pages: 50-120 KB an event), and on a small disk
 * its WAL took the last of the room, and took again whatever room was made (QA). A load that never
 * pauses keeps its large WAL, as before. Batches of reads alone are no activity: an agent polling
 * `session.peek` every second would otherwise put the checkpoint off for good (review).
 *
 * While the disk is short of room (writes fail, or new events are refused for want of it), the
 * timer calls for it whatever follows: clients retrying would otherwise keep the store from ever
 * looking idle, while the pages folded back are what gives the disk its room again.
 */
import type { TransactionObserver } from './commit-queue.js';

export const IDLE_CHECKPOINT_MS = 1_000;

export class IdleCheckpoint implements TransactionObserver {
  readonly #checkpoint: () => void;
  readonly #needsRoom: () => boolean;
  readonly #idleMs: number;
  #timer: NodeJS.Timeout | undefined;
  #lastWriteAt = Number.NEGATIVE_INFINITY;
  /** Whether the batch now committing may have written (told before its commit). */
  #writes = false;
  #stopped = false;

  /**
   * `checkpoint` runs outside any transaction; `needsRoom` says whether the disk is short of room
   * now; `idleMs` is for tests.
   */
  constructor(checkpoint: () => void, needsRoom: () => boolean, idleMs = IDLE_CHECKPOINT_MS) {
    this.#checkpoint = checkpoint;
    this.#needsRoom = needsRoom;
    this.#idleMs = idleMs;
  }

  batchBegun(): void {}
  operationStart(): void {}
  operationRolledBack(): void {}

  beforeCommit(writes: boolean): void {
    this.#writes = writes;
  }

  batchCommitted(): void {
    if (this.#writes) this.#wrote();
  }

  batchRolledBack(): void {
    this.#wrote();
  }

  /** No checkpoint after this one: the store closes, and folds the WAL back itself. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #wrote(): void {
    this.#lastWriteAt = performance.now();
    if (!this.#stopped) this.#timer ??= this.#arm(this.#idleMs);
  }

  // unref: a checkpoint to come must not keep the process alive.
  #arm(ms: number): NodeJS.Timeout {
    return setTimeout(() => this.#due(), ms).unref();
  }

  #due(): void {
    this.#timer = undefined;
    const idleFor = performance.now() - this.#lastWriteAt;
    if (idleFor < this.#idleMs && !this.#needsRoom()) {
      this.#timer = this.#arm(this.#idleMs - idleFor);
      return;
    }
    this.#checkpoint();
  }
}
