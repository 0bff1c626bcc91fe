/**
 * Options a caller hands the client library, checked where they come in, so that a mistake fails
 * at once, naming the option, instead of somewhere inside a library that meant something else.
 */
import { MAX_CALL_TIMEOUT_MS } from '../protocol/constants.js';
import { tokenProblem } from '../protocol/token-format.js';

/**
 * A timeout or delay. Node sets a timer longer than MAX_CALL_TIMEOUT_MS, or NaN, to 1 ms with only
 * a warning: "wait a month" would time out at once, and a reconnect delay of Infinity would retry
 * in a loop. Returns `value` when it is a usable duration in ms (at least `min`), `fallback` when
 * absent; else throws a RangeError.
 */
export function durationOption(name: string, value: number | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= min && value <= MAX_CALL_TIMEOUT_MS)) {
    throw new RangeError(
      `${name} must be a number of milliseconds from ${min} to ${MAX_CALL_TIMEOUT_MS} (about 24.8 days, the longest a Node.js timer waits); got ${String(value)}`,
    );
  }
  return value;
}

/** How often per heartbeat timeout the client checks for silence (see watchSilence). */
export const SILENCE_CHECKS_PER_TIMEOUT = 10;

/**
 * The longest a connection silent for `heartbeatTimeoutMs` stays open: it is found at the first
 * check past it. 0 (no heartbeat): never found.
 */
export function silenceFoundWithinMs(heartbeatTimeoutMs: number): number {
  return heartbeatTimeoutMs === 0 ? 0 : heartbeatTimeoutMs + Math.ceil(heartbeatTimeoutMs / SILENCE_CHECKS_PER_TIMEOUT);
}

/**
 * The token without the whitespace around it (as the token file is read), when an HTTP header can
 * carry it whole; else a TypeError saying what is in the way.
 */
export function tokenOption(token: string): string {
  // The types require it; a caller in plain JavaScript gets a reason, not a TypeError from inside.
  if (typeof token !== 'string') {
    throw new TypeError(`options.token is required (the gateway's token, e.g. localGatewayToken() or process.env.SWITCHBOARD_TOKEN), got ${token === null ? 'null' : typeof token}`);
  }
  const trimmed = token.trim();
  const problem = tokenProblem(trimmed);
  if (problem !== undefined) throw new TypeError(`token ${problem}: a switchboard token is one line of visible characters, sent alone`);
  return trimmed;
}
