/**
 * Events dropped at the pending cap: a session at --max-pending drops its oldest for each new
 * one. Each publisher is told (queue.dropped), but the operator was told nothing: 19,000 events of
 * a session no agent drained went without a line in the log (operator QA). Now the log says so
 * (counted, see counted-log.ts) and gateway.status counts them, per agent for scoped tokens.
 */
import { printable } from '../protocol/printable.js';
import type { RoutingResult } from '../protocol/schemas.js';
import { countedLog, type CountedLog } from './counted-log.js';

export class CapDrops {
  #total = 0;
  readonly #byAgent = new Map<string, number>();
  readonly #log: CountedLog<string>;

  constructor(log: (line: string) => void, maxPendingPerSession: number) {
    this.#log = countedLog(
      log,
      (count, lastSession) =>
        `dropped ${count === 1 ? 'an event' : `${count} events`} at the pending cap (--max-pending ${maxPendingPerSession}), the oldest of ${count === 1 ? 'its session' : 'their sessions'} for a newer one, the last in ${lastSession}: no agent drains ${count === 1 ? 'it' : 'them'} fast enough (session list shows the fullest; event.trace, what was dropped)`,
    );
  }

  /** A system.event was answered: what it dropped, if anything (a repeat's answer dropped nothing again). */
  routed({ duplicate, queue, route, sessionKey }: RoutingResult): void {
    if (duplicate || queue.dropped.length === 0) return;
    this.#total += queue.dropped.length;
    this.#byAgent.set(route.agentId, (this.#byAgent.get(route.agentId) ?? 0) + queue.dropped.length);
    this.#log.happened(printable(sessionKey), queue.dropped.length);
  }

  /** Events dropped at the cap since the gateway started: of every agent, or of one. */
  count(agentId?: string): number {
    return agentId === undefined ? this.#total : (this.#byAgent.get(agentId) ?? 0);
  }

  /** Logs what is held back: the gateway is stopping. */
  flush(): void {
    this.#log.flush();
  }
}
