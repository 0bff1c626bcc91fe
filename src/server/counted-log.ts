/**
 * Log lines for something that may happen many times a second: the first is logged at once, later
 * ones at most once per COUNTED_LOG_INTERVAL_MS, counted, so that clients retrying in a loop cannot
 * flood the log; and those held back are logged when the interval ends, so that none goes untold.
 * A store that fails (see store-failure-log.ts), and connections refused at the TCP limit.
 */
export const COUNTED_LOG_INTERVAL_MS = 60_000;

export interface CountedLog<Detail> {
  /** It happened again (`times` times); `detail` is what the next line tells of the last time. */
  happened(detail: Detail, times?: number): void;
  /** Logs what is held back, now: the gateway is stopping. */
  flush(): void;
  /**
   * Logs what is held back, now, and the next time at once: what it tells of has ended (writes go
   * through again), and its coming back must be told as its beginning was (QA: writes failed again
   * for a minute after the log's last word said they went through).
   */
  restart(): void;
}

/** `describe` words a line from how many times it happened since the last line, and the last time's detail. */
export function countedLog<Detail>(
  log: (line: string) => void,
  describe: (count: number, last: Detail) => string,
  intervalMs = COUNTED_LOG_INTERVAL_MS,
): CountedLog<Detail> {
  let loggedAt = Number.NEGATIVE_INFINITY;
  let heldBack = 0;
  let last: Detail | undefined;
  let timer: NodeJS.Timeout | undefined;

  const write = () => {
    clearTimeout(timer);
    timer = undefined;
    if (heldBack === 0) return;
    log(describe(heldBack, last as Detail));
    loggedAt = performance.now();
    heldBack = 0;
  };

  return {
    happened(detail, times = 1) {
      heldBack += times;
      last = detail;
      const wait = loggedAt + intervalMs - performance.now();
      if (wait <= 0) write();
      // unref: a log line must not keep a stopping process alive.
      else timer ??= setTimeout(write, wait).unref();
    },
    flush: write,
    restart() {
      write();
      loggedAt = Number.NEGATIVE_INFINITY;
    },
  };
}
