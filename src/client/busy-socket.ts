/**
 * A Unix socket whose backlog of connections not yet accepted is full refuses a connect with
 * EAGAIN (where TCP would hold it): the gateway is busy, not gone, and nothing was sent, so a call
 * or a WebSocket connects again, at growing intervals, until its timeout or signal ends it. QA: 50
 * CLI calls at once on a loaded machine failed at once as "not reachable".
 */
import { errnoCode } from './errors.js';

const BUSY_RETRY_FIRST_MS = 5;
const BUSY_RETRY_MAX_MS = 200;

export interface BusyRetry {
  /** Whether `error` says the connection was never made: only then was nothing sent. */
  notConnected(error: unknown): boolean;
  /** Waits `ms` before the next attempt, or throws to give up (a timeout, an abort). */
  pause(ms: number, busy: unknown): Promise<void>;
}

/** Runs `attempt` until it does not fail to connect to a busy socket. */
export async function retryWhileBusy<T>(attempt: () => Promise<T>, { notConnected, pause }: BusyRetry): Promise<T> {
  for (let wait = BUSY_RETRY_FIRST_MS; ; wait = Math.min(2 * wait, BUSY_RETRY_MAX_MS)) {
    try {
      return await attempt();
    } catch (error) {
      if (!notConnected(error) || errnoCode(error) !== 'EAGAIN') throw error;
      await pause(wait, error);
    }
  }
}
