/**
 * Room kept free on the data dir's file system. Past it the store takes no new events, while
 * what is already stored goes on being delivered, acked and traced in the room kept: on a disk
 * filled to the last byte an ack fails as well (it writes to the write-ahead log), and agents
 * could not drain what filled it. It also keeps a publisher (a publish-only token writing to
 * session after session) from filling the disk the rest of the machine needs.
 */
import fs from 'node:fs';

/**
 * How long a reading of the free space is trusted. A `statfs` costs a few microseconds, too much
 * for every append under load; in 100 ms a gateway appends a few megabytes at most, well inside
 * the room kept.
 */
export const FREE_SPACE_READ_INTERVAL_MS = 100;

export interface DiskShortage {
  /** Bytes the gateway's user may still write on the data dir's file system, when last read. */
  availableBytes: number;
  minFreeBytes: number;
}

/** Bytes this user may write on the file system holding `dir` (root's reserved blocks left out). */
export function availableBytes(dir: string): number {
  const { bavail, bsize } = fs.statfsSync(dir);
  return bavail * bsize;
}

export class FreeSpaceGuard {
  readonly #dir: string;
  readonly #minFreeBytes: number;
  readonly #read: (dir: string) => number;
  readonly #now: () => number;
  #readAt = Number.NEGATIVE_INFINITY;
  /** Undefined until read, and when the file system cannot tell (then nothing is refused). */
  #available: number | undefined;

  /** `minFreeBytes` 0 refuses nothing and reads nothing. `read` and `now` are for tests. */
  constructor(dir: string, minFreeBytes: number, read: (dir: string) => number = availableBytes, now: () => number = performance.now.bind(performance)) {
    this.#dir = dir;
    this.#minFreeBytes = minFreeBytes;
    this.#read = read;
    this.#now = now;
  }

  get minFreeBytes(): number {
    return this.#minFreeBytes;
  }

  /** What is free now, as last read (within FREE_SPACE_READ_INTERVAL_MS); undefined when it cannot be told. */
  available(): number | undefined {
    const now = this.#now();
    if (now - this.#readAt >= FREE_SPACE_READ_INTERVAL_MS) {
      this.#readAt = now;
      try {
        this.#available = this.#read(this.#dir);
      } catch {
        // A file system that cannot say (statfs unsupported) must not stop the gateway taking
        // events; a full one still fails their commits, as STORE_UNAVAILABLE.
        this.#available = undefined;
      }
    }
    return this.#available;
  }

  /** Why no new event may be stored now, or undefined when one may. */
  shortage(): DiskShortage | undefined {
    if (this.#minFreeBytes === 0) return undefined;
    const available = this.available();
    if (available === undefined || available >= this.#minFreeBytes) return undefined;
    return { availableBytes: available, minFreeBytes: this.#minFreeBytes };
  }
}
