/**
 * The gateway's log of a store that fails (a full disk, an I/O error). Callers are answered
 * STORE_UNAVAILABLE; an operator watching the log must learn it too (QA: on a full disk every write
 * failed while the log stayed silent). Writes no caller waits for (traces, pruning) fail into a log
 * of their own, counted as well: on a full disk every subscribe's replay fails one per session
 * (QA: ~2,000 lines in 30 s). Events refused for want of disk space (STORE_FULL) are counted alike.
 */
import type { StoreFullError, StoreUnavailableError } from '../store/errors.js';
import { describeShortage } from '../store/free-space.js';
import { countedLog, type CountedLog } from './counted-log.js';

export function storeFailureLog(log: (line: string) => void, intervalMs?: number): CountedLog<StoreUnavailableError> {
  return countedLog<StoreUnavailableError>(
    log,
    (count, last) => `store unavailable: ${count === 1 ? 'a call' : `${count} calls`} answered STORE_UNAVAILABLE (${last.message})`,
    intervalMs,
  );
}

export function diskFullLog(log: (line: string) => void, intervalMs?: number): CountedLog<StoreFullError> {
  return countedLog<StoreFullError>(
    log,
    (count, { shortage }) =>
      `disk full: refused ${count === 1 ? 'an event' : `${count} events`} with STORE_FULL: ${describeShortage(shortage)}; free some space there`,
    intervalMs,
  );
}

export function backgroundFailureLog(log: (line: string) => void, intervalMs?: number): CountedLog<unknown> {
  return countedLog<unknown>(
    log,
    (count, last) => `background store write failed${count === 1 ? '' : ` ${count} times`} (traces, pruning: never events): ${(last as Error)?.message ?? String(last)}`,
    intervalMs,
  );
}
