/**
 * The gateway's log of a store that fails (a full disk, an I/O error). Callers are answered
 * STORE_UNAVAILABLE; an operator watching the log must learn it too (QA: on a full disk every write
 * failed while the log stayed silent). The first failure is logged at once; later ones at most once
 * per STORE_FAILURE_LOG_INTERVAL_MS, counted, so that clients retrying in a loop cannot flood it,
 * and failures held back are logged when the interval ends, so that none goes untold.
 */
import type { StoreUnavailableError } from '../store/errors.js';

export const STORE_FAILURE_LOG_INTERVAL_MS = 60_000;

export interface StoreFailureLog {
  /** A call failed with `error`. */
  failed(error: StoreUnavailableError): void;
  /** Logs what is held back, now: the gateway is stopping. */
  flush(): void;
}

export function storeFailureLog(log: (line: string) => void, intervalMs = STORE_FAILURE_LOG_INTERVAL_MS): StoreFailureLog {
  let loggedAt = Number.NEGATIVE_INFINITY;
  let heldBack = 0;
  let last: StoreUnavailableError | undefined;
  let timer: NodeJS.Timeout | undefined;

  const write = () => {
    clearTimeout(timer);
    timer = undefined;
    if (heldBack === 0 || last === undefined) return;
    const calls = heldBack === 1 ? 'a call' : `${heldBack} calls`;
    log(`store unavailable: ${calls} answered STORE_UNAVAILABLE (${last.message})`);
    loggedAt = performance.now();
    heldBack = 0;
  };

  return {
    failed(error) {
      heldBack++;
      last = error;
      const wait = loggedAt + intervalMs - performance.now();
      if (wait <= 0) write();
      // unref: a log line must not keep a stopping process alive.
      else timer ??= setTimeout(write, wait).unref();
    },
    flush: write,
  };
}
