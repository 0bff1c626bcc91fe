/**
 * The durations a caller hands the client library (timeouts, reconnect delays), checked where they
 * come in. Node sets a timer longer than MAX_CALL_TIMEOUT_MS, or NaN, to 1 ms with only a warning:
 * "wait a month" would time out at once, and a reconnect delay of Infinity would retry in a loop.
 */
import { MAX_CALL_TIMEOUT_MS } from '../protocol/constants.js';

/** `value` when it is a usable duration in ms (at least `min`), `fallback` when absent; else a RangeError. */
export function durationOption(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= MAX_CALL_TIMEOUT_MS)) {
    throw new RangeError(
      `${name} must be a number of milliseconds from ${min} to ${MAX_CALL_TIMEOUT_MS} (about 24.8 days, the longest a Node.js timer waits); got ${String(value)}`,
    );
  }
  return value;
}
