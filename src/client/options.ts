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

/**
 * subscribe()'s options: plain JavaScript has no types to say so, and without onEvent every event
 * would throw in the client's own receive, uncaught (QA).
 */
export function subscribeOptions(options: unknown): void {
  const onEvent = (options as { onEvent?: unknown } | null | undefined)?.onEvent;
  if (typeof onEvent !== 'function') {
    throw new TypeError(
      `subscribe(target, { onEvent }) takes a function to call with each event, got ${options === undefined || options === null ? `${String(options)} for its options` : `onEvent: ${onEvent === null ? 'null' : typeof onEvent}`}; events() gives them as an async iterator instead`,
    );
  }
}

/**
 * A subscription's target, as subscribe() and events() take it. A member present but undefined (a
 * variable not set, in plain JavaScript or past a cast) vanishes from the JSON: with the other
 * member given that is harmless, but with neither, the subscription widens to every session of
 * the token's agent, and an agent would act on events from conversations it never asked for. So
 * that is a TypeError, as is a member that is null or not a string, and a target that is not an
 * object.
 */
export function subscribeTargetOption(target: object): void {
  if (typeof target !== 'object' || target === null) {
    throw new TypeError(`a subscription's target is { sessionKey }, { agentId } or {} (every session of the token's agent), got ${target === null ? 'null' : typeof target}`);
  }
  const members = target as Record<string, unknown>;
  const given = typeof members['sessionKey'] === 'string' || typeof members['agentId'] === 'string';
  for (const [name, what] of [['sessionKey', 'a session key'], ['agentId', 'an agent id']] as const) {
    const value = members[name];
    if (!Object.hasOwn(target, name) || typeof value === 'string' || (value === undefined && given)) continue;
    throw new TypeError(
      `target.${name} is ${value === null ? 'null' : typeof value}: give ${what}${value === undefined ? ", or leave it out to subscribe to every session of the token's agent" : ''}`,
    );
  }
}
