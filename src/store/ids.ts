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

/** The ASCII code of each byte's first and second lowercase hex digit. */
const HEX_HIGH = Uint8Array.from({ length: 256 }, (_, byte) => '0123456789abcdef'.charCodeAt(byte >> 4));
const HEX_LOW = Uint8Array.from({ length: 256 }, (_, byte) => '0123456789abcdef'.charCodeAt(byte & 0xf));

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

const UUID_TEXT_LENGTH = 36;

/** Returns a function that issues UUIDv7 ids, strictly increasing, with time from `clock`. */
export function uuidV7Generator(clock: () => number = Date.now): () => string {
  const pool = Buffer.allocUnsafe(RANDOM_BYTES_PER_ID * IDS_PER_REFILL);
  let offset = pool.length;
  let lastMs = -1;
  let counter = 0;
  // Each id is written here and read out as one string: joining it from a dozen pieces took ~3
  // times as long, and left a string SQLite's binding had to flatten first. The dashes stay put;
  // the time is written once per millisecond.
  const text = Buffer.alloc(UUID_TEXT_LENGTH, '-');
  const writeHex = (at: number, byte: number) => {
    text[at] = HEX_HIGH[byte]!;
    text[at + 1] = HEX_LOW[byte]!;
  };
  const startMillisecond = (ms: number, r: number) => {
    lastMs = ms;
    counter = ((pool[r + 8]! << 8) | pool[r + 9]!) % COUNTER_SEED_LIMIT;
    const time = ms.toString(16).padStart(12, '0');
    text.write(time.slice(0, 8), 0, 'latin1');
    text.write(time.slice(8), 9, 'latin1');
  };

  return () => {
    if (offset === pool.length) {
      randomFillSync(pool);
      offset = 0;
    }
    const r = offset;
    offset += RANDOM_BYTES_PER_ID;

    const now = clock();
    if (now > lastMs) startMillisecond(now, r);
    else if (counter < COUNTER_MAX) counter++;
    // The counter ran out within one millisecond: borrow the next one.
    else startMillisecond(lastMs + 1, r);

    const versionAndCounter = 0x7000 | counter;
    writeHex(14, versionAndCounter >> 8);
    writeHex(16, versionAndCounter & 0xff);
    writeHex(19, (pool[r]! & 0x3f) | 0x80);
    writeHex(21, pool[r + 1]!);
    for (let i = 0; i < 6; i++) writeHex(24 + 2 * i, pool[r + 2 + i]!);
    return text.toString('latin1', 0, UUID_TEXT_LENGTH);
  };
}

/** The store's event ids. One generator per process, so ids of one store never go back. */
export const newEventId = uuidV7Generator();
