/**
 * Event ids: UUIDs of version 7 (RFC 9562), in the usual 8-4-4-4-12 lowercase hex text.
 *
 * Why not randomUUID(): ids are keys of two indexes (the events table's UNIQUE event_id and the
 * trace table's trace_by_event). A random id lands on a random page of each, so every event of a
 * batch dirties pages of its own, and every dirty page is written at commit. A version 7 id starts
 * with the time in milliseconds, so ids issued together sort together and each index grows at its
 * right edge: one batch touches a handful of pages.
 *
 * Layout (RFC 9562 section 5.7, with "Method 1" of section 6.2 for order within a millisecond):
 *   48 bits unix_ts_ms | 4 bits version (0111) | 12 bits rand_a: a counter |
 *   2 bits variant (10) | 62 bits rand_b: random, from the crypto RNG.
 * The counter starts at a random value below 2^11 each millisecond (so it has at least 2048 steps
 * before it runs out) and counts up for every further id in the same millisecond. When it does run
 * out, or the clock steps back, the timestamp is carried forward instead: ids from one generator
 * always sort in the order they were issued, and never repeat.
 */
import { randomFillSync } from 'node:crypto';

const HEX = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

/** rand_b (8 bytes, 2 bits of them overwritten by the variant) and a counter seed (2 bytes). */
const RANDOM_BYTES_PER_ID = 10;

/**
 * Ids' worth of random bytes drawn from the RNG at once: one randomFillSync per id costs about as
 * much as the rest of the id; 256 ids (2.5 KiB) makes the call's cost vanish.
 */
const IDS_PER_REFILL = 256;

const COUNTER_MAX = 0xfff;
/** A fresh millisecond's counter starts below this, leaving at least as many steps above it. */
const COUNTER_SEED_LIMIT = 0x800;

/** Returns a function that issues UUIDv7 ids, strictly increasing, with time from `clock`. */
export function uuidV7Generator(clock: () => number = Date.now): () => string {
  const pool = Buffer.allocUnsafe(RANDOM_BYTES_PER_ID * IDS_PER_REFILL);
  let offset = pool.length;
  let lastMs = -1;
  let counter = 0;

  return () => {
    if (offset === pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    const r = offset;
    offset += RANDOM_BYTES_PER_ID;

    const now = clock();
    if (now > lastMs) {
      lastMs = now;
      counter = ((pool[r + 8]! << 8) | pool[r + 9]!) % COUNTER_SEED_LIMIT;
    } else if (counter < COUNTER_MAX) {
      counter++;
    } else {
      // The counter ran out within one millisecond: borrow the next one.
      lastMs++;
      counter = ((pool[r + 8]! << 8) | pool[r + 9]!) % COUNTER_SEED_LIMIT;
    }

    const time = lastMs.toString(16).padStart(12, '0');
    return (
      `${time.slice(0, 8)}-${time.slice(8)}-${(0x7000 | counter).toString(16)}-` +
      HEX[(pool[r]! & 0x3f) | 0x80]! +
      HEX[pool[r + 1]!]! +
      '-' +
      HEX[pool[r + 2]!]! +
      HEX[pool[r + 3]!]! +
      HEX[pool[r + 4]!]! +
      HEX[pool[r + 5]!]! +
      HEX[pool[r + 6]!]! +
      HEX[pool[r + 7]!]!
    );
  };
}

/** The store's event ids. One generator per process, so ids of one store never go back. */
export const newEventId = uuidV7Generator();
