/**
 * Room kept free on the data dir's file system. Past it the store takes no new events, while
 * what is already stored goes on being delivered, acked and traced in the room kept: on a disk
 * filled to the last byte an ack fails as well (it writes to the write-ahead log), and agents
 * could not drain what filled it. It also keeps a publisher (a publish-only token writing to
 * session after session) from filling the disk the rest of the machine needs.
 */
import fs from 'node:fs';
import { mebibytes } from '../protocol/errors.js';

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

/** The shortage in words, for the log: what is free against what is kept. */
export function describeShortage({ availableBytes, minFreeBytes }: DiskShortage): string {
  return `the data dir's disk has ${mebibytes(availableBytes)} free, under the ${mebibytes(minFreeBytes)} kept (--min-free-disk)`;
}

/**
 * Past this, a file system's block size is taken to be its preferred transfer size and not the
 * unit it counts free blocks in (Docker Desktop's file shares say 1 MiB, and count in 4 KiB:
 * review), which Node 20's statfs does not give (no f_frsize): the free space is then unknown.
 */
const MAX_TRUSTED_BLOCK_SIZE = 64 * 1024;

/** Bytes this user may write on the file system holding `dir` (root's reserved blocks left out); undefined when it cannot be told. */
export function availableBytes(dir: string): number | undefined {
  const { bavail, bsize } = fs.statfsSync(dir);
  return bsize > MAX_TRUSTED_BLOCK_SIZE ? undefined : bavail * bsize;
}

export class FreeSpaceGuard {
  readonly #dir: string;
  readonly #minFreeBytes: number;
  readonly #read: (dir: string) => number | undefined;
  readonly #now: () => number;
  #readAt = Number.NEGATIVE_INFINITY;
  /** Undefined until read, and when the file system cannot tell (then nothing is refused). */
  #available: number | undefined;

  /** `minFreeBytes` 0 refuses nothing and reads nothing. `read` and `now` (ms) are for tests. */
  constructor(dir: string, minFreeBytes: number, read: (dir: string) => number | undefined = availableBytes, now: () => number = Date.now) {
    this.#dir = dir;
    this.#minFreeBytes = minFreeBytes;
    this.#read = read;
    this.#now = now;
  }

  get minFreeBytes(): number {
    return this.#minFreeBytes;
  }

  /** What is free now, as last read (within FREE_SPACE_READ_INTERVAL_MS); undefined when it cannot be told. */
  available(now = this.#now()): number | undefined {
    if (now - this.#readAt >= FREE_SPACE_READ_INTERVAL_MS || now < this.#readAt) {
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

  /** Why no new event may be stored now (`now`: Date.now(), which a caller may have read already), or undefined when one may. */
  shortage(now?: number): DiskShortage | undefined {
    if (this.#minFreeBytes === 0) return undefined;
    const available = this.available(now);
    if (available === undefined || available >= this.#minFreeBytes) return undefined;
    return { availableBytes: available, minFreeBytes: this.#minFreeBytes };
  }
}
