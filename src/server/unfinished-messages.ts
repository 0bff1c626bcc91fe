/**
 * Memory held by messages and HTTP bodies the gateway has begun to read and not finished. Until a
 * message is whole, ws keeps every read of the socket that holds part of it, and every fragment it
 * came in. Each connection is bounded (MAX_FRAME_BYTES, MAX_FRAGMENTS_PER_MESSAGE), but not all of
 * them together: 600 connections of a publish-only token, each holding 16,000 fragments of a
 * message it never finished, took a gateway from 63 MB to 2 GB (QA). This counts what each holder
 * holds and bounds the sum: past it, the holder of the most is cut.
 */

/** What a buffer costs beside its bytes: the Buffer object, its ArrayBuffer and their allocation. */
export const BUFFER_OVERHEAD_BYTES = 256;

export interface UnfinishedHolder {
  /** Stops reading and closes: it holds the most when the gateway holds too much. */
  cutForUnfinished(): void;
}

export class UnfinishedMessages {
  readonly #limit: number;
  /** What each holder that is not cut holds; #total is their sum. */
  readonly #held = new Map<UnfinishedHolder, number>();
  /**
   * Holders cut and not closed yet. What they hold is no longer counted: they are read no more, and
   * it is freed within their close's grace. Counted, it would have the next largest cut as well.
   */
  readonly #cut = new Set<UnfinishedHolder>();
  #total = 0;

  constructor(limitBytes: number) {
    this.#limit = limitBytes;
  }

  /** What the holder's unfinished message holds now (0: none); cuts the largest holders while the total is past the limit. */
  set(holder: UnfinishedHolder, bytes: number): void {
    const before = this.#held.get(holder);
    // Almost every read ends in a whole message: that costs one lookup.
    if (before === undefined && (bytes === 0 || this.#cut.has(holder))) return;
    this.#total += bytes - (before ?? 0);
    if (bytes === 0) this.#held.delete(holder);
    else this.#held.set(holder, bytes);
    while (this.#total > this.#limit) {
      const largest = this.#largest();
      if (largest === undefined) return;
      this.#total -= this.#held.get(largest)!;
      this.#held.delete(largest);
      this.#cut.add(largest);
      largest.cutForUnfinished();
    }
  }

  /** The holder is gone: nothing it held is kept. */
  release(holder: UnfinishedHolder): void {
    this.#total -= this.#held.get(holder) ?? 0;
    this.#held.delete(holder);
    this.#cut.delete(holder);
  }

  /**
   * Linear, but only past the limit, once for each holder cut: a peer that keeps the total at the
   * limit has each of its reads past it pay the scan, and is cut by it.
   */
  #largest(): UnfinishedHolder | undefined {
    let largest: UnfinishedHolder | undefined;
    let most = 0;
    for (const [holder, bytes] of this.#held) {
      if (bytes > most) {
        largest = holder;
        most = bytes;
      }
    }
    return largest;
  }
}
