/**
 * The signals that stop the gateway, and those that come before its code has loaded. Loading the
 * CLI and the gateway's bundle takes ~150 ms on a loaded machine, and Node's default action ended
 * a gateway signalled then with 143, unsaid (QA: a supervisor reloading right after a start). So
 * the CLI holds them from its first step, and the gateway command takes them over. The two are
 * separate bundles, each with its own copy of this module: they meet on `process`, under a
 * registered symbol.
 */

/** SIGHUP is "restart": the same graceful stop, but clients are told (1012) the gateway returns. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

const HELD = Symbol.for('switchboard.heldStopSignals');

interface Held {
  received: NodeJS.Signals[];
  release(): void;
}

type WithHeld = NodeJS.Process & { [HELD]?: Held };

/** From now on, a stop signal is kept (see takeHeldSignals) instead of ending the process. */
export function holdStopSignals(): void {
  const received: NodeJS.Signals[] = [];
  const hold = (signal: NodeJS.Signals) => received.push(signal);
  for (const name of STOP_SIGNALS) process.on(name, hold);
  (process as WithHeld)[HELD] = { received, release: () => STOP_SIGNALS.forEach((name) => process.off(name, hold)) };
}

/**
 * The signals held since holdStopSignals, in order, and no longer held. Called once the caller's
 * own listeners are on: a signal dispatched later goes to them alone, none is lost or seen twice.
 */
export function takeHeldSignals(): NodeJS.Signals[] {
  const held = (process as WithHeld)[HELD];
  if (!held) return [];
  held.release();
  delete (process as WithHeld)[HELD];
  return held.received;
}
