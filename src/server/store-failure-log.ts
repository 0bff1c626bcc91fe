/**
 * The gateway's log of a store that fails (a full disk, an I/O error). Callers are answered
 * STORE_UNAVAILABLE; an operator watching the log must learn it too (QA: on a full disk every write
 * failed while the log stayed silent).
 */
import type { StoreUnavailableError } from '../store/errors.js';
import { countedLog, type CountedLog } from './counted-log.js';

export function storeFailureLog(log: (line: string) => void, intervalMs?: number): CountedLog<StoreUnavailableError> {
  return countedLog<StoreUnavailableError>(
    log,
    (count, last) => `store unavailable: ${count === 1 ? 'a call' : `${count} calls`} answered STORE_UNAVAILABLE (${last.message})`,
    intervalMs,
  );
}
