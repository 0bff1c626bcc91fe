/**
 * Subscriptions, push and wake: what happens to an event once it is stored. The hub indexes
 * subscriptions by session and by agent, so sending an event costs nothing per idle connection.
 *
 * Ordering: a subscription first replays its backlog from the store, then goes live. A live event
 * that arrives while the backlog is being replayed only marks its session dirty; the replay reads
 * dirty sessions again before it goes live. A per-session cursor (last seq sent) drops anything
 * already sent, so replay and live traffic can overlap without a gap or a duplicate.
 */
import { REPLAY_PAGE_SIZE, WAKE_COALESCE_MS } from '../protocol/constants.js';
import type { AgentWakeNotification, WakeOutcome } from '../protocol/schemas.js';
import { parseSessionKey } from '../protocol/session-key.js';
import { toStoredEvent, type Delivery, type RoutedEvent } from '../routing/route-event.js';
import type { EventStore, TraceEntry } from '../store/types.js';

/** The hub's view of a connection. */
export interface Subscriber {
  readonly connectionId: number;
  /** Sends a ready-made frame; false when the connection is gone or was just cut as too slow. */
  push(frame: string): boolean;
  /** Bytes accepted by push() that the socket has not sent yet. */
  readonly bufferedAmount: number;
}

export type SubscriptionTarget = { sessionKey: string; agentId: string } | { sessionKey: null; agentId: string };

export interface HubOptions {
  heartbeatIntervalMs: number;
  /** Replay pauses while a subscriber has more than this unsent; live pushes are never paused. */
  replayHighWaterBytes: number;
}

class Subscription {
  readonly cursors = new Map<string, number>();
  /** Sessions that got live events while the backlog was being replayed. */
  readonly dirty = new Set<string>();
  replaying = true;
  active = true;

  constructor(
    readonly id: string,
    readonly subscriber: Subscriber,
    readonly target: SubscriptionTarget,
    readonly after: number | Readonly<Record<string, number>>,
  ) {}

  /** Last seq this subscription has seen of a session: sent, or skipped by the caller's cursor. */
  cursor(sessionKey: string): number {
    const sent = this.cursors.get(sessionKey);
    if (sent !== undefined) return sent;
    return typeof this.after === 'number' ? this.after : (this.after[sessionKey] ?? 0);
  }
}

interface AgentPresence {
  /** Connections holding at least one subscription of the agent, with how many. */
  readonly connections: Map<number, { subscriber: Subscriber; subscriptions: number }>;
  /** Sessions and events that the next `event` wake names; the timer runs while one is due. */
  readonly wake: { sessions: Set<string>; eventIds: string[]; timer: NodeJS.Timeout | NodeJS.Immediate | undefined };
  /** Sessions and events that the next heartbeat names. */
  readonly heartbeat: { sessions: Set<string>; eventIds: string[] };
}

export class DeliveryHub implements Delivery {
  readonly #store: EventStore;
  readonly #options: HubOptions;
  readonly #bySession = new Map<string, Set<Subscription>>();
  readonly #byAgentWide = new Map<string, Set<Subscription>>();
  readonly #byConnection = new Map<number, Map<string, Subscription>>();
  readonly #agents = new Map<string, AgentPresence>();
  readonly #heartbeat: NodeJS.Timeout;
  #nextSubscription = 1;

  constructor(store: EventStore, options: HubOptions) {
    this.#store = store;
    this.#options = options;
    this.#heartbeat = setInterval(() => this.#sendHeartbeats(), options.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  subscriptionCount(connectionId: number): number {
    return this.#byConnection.get(connectionId)?.size ?? 0;
  }

  /** Registers a subscription; it sends nothing until `start` (after the subscribe answer). */
  subscribe(subscriber: Subscriber, target: SubscriptionTarget, after: number | Record<string, number>): Subscription {
    const id = `${subscriber.connectionId}.${this.#nextSubscription++}`;
    const subscription = new Subscription(id, subscriber, target, after);
    const index = target.sessionKey === null ? this.#byAgentWide : this.#bySession;
    addTo(index, target.sessionKey ?? target.agentId, subscription);
    let own = this.#byConnection.get(subscriber.connectionId);
    if (!own) this.#byConnection.set(subscriber.connectionId, (own = new Map()));
    own.set(id, subscription);
    const presence = this.#presence(target.agentId);
    const entry = presence.connections.get(subscriber.connectionId);
    if (entry) entry.subscriptions++;
    else presence.connections.set(subscriber.connectionId, { subscriber, subscriptions: 1 });
    return subscription;
  }

  /** Replays the backlog, then goes live. Errors end the replay; the events stay pending. */
  start(subscription: Subscription): Promise<void> {
    return this.#replay(subscription).catch(() => {
      subscription.replaying = false;
    });
  }

  unsubscribe(connectionId: number, subscriptionId: string): boolean {
    const subscription = this.#byConnection.get(connectionId)?.get(subscriptionId);
    if (!subscription) return false;
    this.#remove(subscription);
    return true;
  }

  /** Ends every subscription of a connection that closed. */
  dropConnection(connectionId: number): void {
    const own = this.#byConnection.get(connectionId);
    if (!own) return;
    for (const subscription of [...own.values()]) this.#remove(subscription);
  }

  close(): void {
    clearInterval(this.#heartbeat);
    for (const presence of this.#agents.values()) clearTimer(presence.wake.timer);
  }

  // ------------------------------------------------------------------ Delivery

  plan(event: RoutedEvent, outcome: { status: string }): { wake: WakeOutcome; receivers: number } {
    const receivers =
      outcome.status === 'deduplicated'
        ? 0
        : (this.#bySession.get(event.sessionKey)?.size ?? 0) + (this.#byAgentWide.get(event.route.agentId)?.size ?? 0);
    return { wake: this.#planWake(event), receivers };
  }

  deliver(event: RoutedEvent, outcome: { status: string }): void {
    if (outcome.status === 'deduplicated') return;
    const sessionSubscriptions = this.#bySession.get(event.sessionKey);
    const agentSubscriptions = this.#byAgentWide.get(event.route.agentId);
    if (!sessionSubscriptions && !agentSubscriptions) return;
    const eventJson = JSON.stringify(toStoredEvent(event));
    const traces: TraceEntry[] = [];
    for (const subscriptions of [sessionSubscriptions, agentSubscriptions]) {
      if (!subscriptions) continue;
      for (const subscription of subscriptions) {
        if (subscription.replaying) subscription.dirty.add(event.sessionKey);
        else if (this.#send(subscription, event.sessionKey, event.seq, eventJson)) traces.push(delivered(event.eventId, subscription, false));
      }
    }
    if (traces.length > 0) this.#store.recordTrace(traces);
  }

  // ------------------------------------------------------------------ replay

  async #replay(subscription: Subscription): Promise<void> {
    const { target } = subscription;
    const sessions = target.sessionKey !== null ? [target.sessionKey] : await this.#store.pendingSessionKeys(target.agentId);
    for (const sessionKey of sessions) await this.#catchUp(subscription, sessionKey);
    while (subscription.active && subscription.dirty.size > 0) {
      const sessionKey = subscription.dirty.values().next().value as string;
      subscription.dirty.delete(sessionKey);
      await this.#catchUp(subscription, sessionKey);
    }
    // No await between the last read and this line: any event stored after that read is
    // delivered live, and one the read already returned is below the cursor.
    subscription.replaying = false;
  }

  async #catchUp(subscription: Subscription, sessionKey: string): Promise<void> {
    const parsed = parseSessionKey(sessionKey);
    if (!parsed.ok) return;
    for (;;) {
      if (!subscription.active) return;
      const page = await this.#store.peek(sessionKey, { after: subscription.cursor(sessionKey), limit: REPLAY_PAGE_SIZE });
      const traces: TraceEntry[] = [];
      try {
        for (const record of page.events) {
          // Per event, not per page: a page of large events alone could pass the cut-off.
          await this.#waitForRoom(subscription);
          const eventJson = JSON.stringify(toStoredEvent({ ...record, route: parsed.value.route }));
          if (!this.#send(subscription, sessionKey, record.seq, eventJson)) return;
          traces.push(delivered(record.eventId, subscription, true));
        }
      } finally {
        if (traces.length > 0) this.#store.recordTrace(traces);
      }
      if (!page.more) return;
    }
  }

  /** Replay must not be what makes a subscriber "slow": it waits for the socket to drain. */
  async #waitForRoom(subscription: Subscription): Promise<void> {
    // Replay is unhurried: each pause lets the socket drain and live traffic through.
    while (subscription.active && subscription.subscriber.bufferedAmount > this.#options.replayHighWaterBytes) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /** Sends an event unless the subscription already has it; advances the cursor. */
  #send(subscription: Subscription, sessionKey: string, seq: number, eventJson: string): boolean {
    if (!subscription.active) return false;
    if (seq <= subscription.cursor(sessionKey)) return true;
    subscription.cursors.set(sessionKey, seq);
    const frame = `{"jsonrpc":"2.0","method":"session.event","params":{"subscriptionId":${JSON.stringify(subscription.id)},"event":${eventJson}}}`;
    return subscription.subscriber.push(frame);
  }

  #remove(subscription: Subscription): void {
    subscription.active = false;
    const { target, subscriber } = subscription;
    removeFrom(target.sessionKey === null ? this.#byAgentWide : this.#bySession, target.sessionKey ?? target.agentId, subscription);
    const own = this.#byConnection.get(subscriber.connectionId);
    own?.delete(subscription.id);
    if (own?.size === 0) this.#byConnection.delete(subscriber.connectionId);
    const presence = this.#agents.get(target.agentId);
    const entry = presence?.connections.get(subscriber.connectionId);
    if (!presence || !entry) return;
    if (--entry.subscriptions === 0) presence.connections.delete(subscriber.connectionId);
    if (presence.connections.size === 0) {
      clearTimer(presence.wake.timer);
      this.#agents.delete(target.agentId);
    }
  }

  // ------------------------------------------------------------------ wake

  #presence(agentId: string): AgentPresence {
    let presence = this.#agents.get(agentId);
    if (!presence) {
      presence = {
        connections: new Map(),
        wake: { sessions: new Set(), eventIds: [], timer: undefined },
        heartbeat: { sessions: new Set(), eventIds: [] },
      };
      this.#agents.set(agentId, presence);
    }
    return presence;
  }

  /**
   * The first `now` event wakes the agent at the end of this turn (so events committed together
   * share it); then a window of WAKE_COALESCE_MS opens, and events in it share one more wake at
   * its end. The follow-up is needed: the agent may have looked before they arrived.
   */
  #planWake(event: RoutedEvent): WakeOutcome {
    const { agentId } = event.route;
    const presence = this.#agents.get(agentId);
    if (!presence) {
      return {
        status: 'no-agent-connected',
        message: `no connection subscribes to agent "${agentId}"; the event waits in the session queue`,
      };
    }
    if (event.mode === 'next-heartbeat') {
      presence.heartbeat.sessions.add(event.sessionKey);
      presence.heartbeat.eventIds.push(event.eventId);
      return {
        status: 'next-heartbeat',
        message: `agent "${agentId}" is told at its next heartbeat (every ${formatInterval(this.#options.heartbeatIntervalMs)})`,
      };
    }
    const { wake } = presence;
    wake.sessions.add(event.sessionKey);
    wake.eventIds.push(event.eventId);
    if (wake.timer !== undefined) {
      return { status: 'coalesced', message: `folded into an agent.wake due within ${WAKE_COALESCE_MS} ms` };
    }
    wake.timer = setImmediate(() => this.#sendWake(agentId));
    return { status: 'sent', message: `agent.wake sent to ${presence.connections.size} connection(s) of agent "${agentId}"` };
  }

  #sendWake(agentId: string): void {
    const presence = this.#agents.get(agentId);
    if (!presence) return;
    const { wake } = presence;
    wake.timer = undefined;
    if (wake.sessions.size === 0) return;
    this.#notifyAgent(agentId, presence, 'event', wake);
    wake.timer = setTimeout(() => this.#sendWake(agentId), WAKE_COALESCE_MS);
  }

  #sendHeartbeats(): void {
    for (const [agentId, presence] of this.#agents) this.#notifyAgent(agentId, presence, 'heartbeat', presence.heartbeat);
  }

  #notifyAgent(
    agentId: string,
    presence: AgentPresence,
    reason: AgentWakeNotification['reason'],
    due: { sessions: Set<string>; eventIds: string[] },
  ): void {
    const params: AgentWakeNotification = { agentId, reason, sessions: [...due.sessions], at: new Date().toISOString() };
    const frame = JSON.stringify({ jsonrpc: '2.0', method: 'agent.wake', params });
    let sent = 0;
    for (const { subscriber } of presence.connections.values()) if (subscriber.push(frame)) sent++;
    const at = Date.now();
    this.#store.recordTrace(due.eventIds.map((eventId) => ({ eventId, step: 'wake', at, detail: { reason, connections: sent } })));
    due.sessions.clear();
    due.eventIds = [];
  }
}

function delivered(eventId: string, subscription: Subscription, replay: boolean): TraceEntry {
  return {
    eventId,
    step: 'delivered',
    at: Date.now(),
    detail: { connectionId: subscription.subscriber.connectionId, subscriptionId: subscription.id, replay },
  };
}

function addTo<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  let set = index.get(key);
  if (!set) index.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(index: Map<K, Set<V>>, key: K, value: V): void {
  const set = index.get(key);
  if (!set) return;
  set.delete(value);
  if (set.size === 0) index.delete(key);
}

function formatInterval(ms: number): string {
  return ms < 1000 || ms % 1000 !== 0 ? `${ms} ms` : `${ms / 1000} s`;
}

function clearTimer(timer: NodeJS.Timeout | NodeJS.Immediate | undefined): void {
  if (timer === undefined) return;
  clearTimeout(timer as NodeJS.Timeout);
  clearImmediate(timer as NodeJS.Immediate);
}
