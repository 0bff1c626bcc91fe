/**
 * Subscriptions, push and wake: what happens to an event once it is stored. The hub indexes
 * subscriptions by session and by agent, so sending an event costs nothing per idle connection.
 *
 * Ordering: a subscription first replays its backlog from the store, then goes live. A live event
 * that arrives while the backlog is being replayed only marks its session dirty; the replay reads
 * dirty sessions again before it goes live. A per-session cursor (last seq sent) drops anything
 * already sent, so replay and live traffic can overlap without a gap or a duplicate.
 */
import { MAX_WAKE_SESSIONS_BYTES, REPLAY_PAGE_SIZE, WAKE_COALESCE_MS } from '../protocol/constants.js';
import type { AgentWakeNotification, WakeOutcome } from '../protocol/schemas.js';
import { parseSessionKey } from '../protocol/session-key.js';
import { toStoredEvent, type Delivery, type RoutedEvent } from '../routing/route-event.js';
import type { EventStore, TraceDetail, TraceEntry } from '../store/types.js';
import { CloseCode } from './connection.js';

/** The first wait of a replay for its socket to drain, doubled while it has not, up to the longest. */
const REPLAY_FIRST_PAUSE_MS = 5;

/**
 * Agent-wide replays of one agent that run at once; the others wait their turn (a replay of a few
 * sessions takes milliseconds). Each holds the key of every session of the agent with pending
 * events, and a cursor per session it replayed, until it goes live: 48 connections of one token
 * subscribing to an agent with 300,000 pending sessions took the gateway past its heap (security QA).
 */
export const AGENT_REPLAYS_AT_ONCE = 2;
const REPLAY_LONGEST_PAUSE_MS = 200;

/** The hub's view of a connection. */
export interface Subscriber {
  readonly connectionId: number;
  /** Sends a ready-made frame; false when the connection is gone or was just cut as too slow. */
  push(frame: string): boolean;
  /** Bytes accepted by push() that the socket has not sent yet. */
  readonly bufferedAmount: number;
  /** Ends the connection; the client reconnects and resubscribes from its own cursor. */
  close(code: number, reason: string): unknown;
}

export type SubscriptionTarget = { sessionKey: string; agentId: string } | { sessionKey: null; agentId: string };

/** A session whose `after` is beyond the last seq it issued: why a subscription was refused. */
export interface CursorAhead {
  sessionKey: string;
  after: number;
  lastSeq: number;
}

/**
 * checking: registered while its cursor is checked against the store; nothing is sent to it and
 * it counts as no receiver, since it may yet be refused. replaying: its backlog is being sent.
 * live: events are pushed as they are stored. ended: unsubscribed, or its connection closed.
 */
type SubscriptionState = 'checking' | 'replaying' | 'live' | 'ended';

export interface HubOptions {
  heartbeatIntervalMs: number;
  /** Replay pauses while a subscriber has more than this unsent; live pushes are never paused. */
  replayHighWaterBytes: number;
}

class Subscription {
  /**
   * Last seq sent of each session, where it moved past `after`. A session subscription only ever
   * sees its own session, so it keeps one number; an agent subscription keeps a Map, until
   * settle() (its live pushes cannot repeat an event: no map is needed, to grow with every session
   * the agent hears from for as long as it stays connected). Both start out absent: most
   * subscriptions sit idle, and an empty Map costs ~200 B per connection.
   */
  #sent: number | Map<string, number> | undefined;
  /** An agent subscription past settle(): it keeps no per-session cursor. */
  #settled = false;
  /** Sessions that got live events while the backlog was being replayed; created at the first. */
  #dirty: Set<string> | undefined;
  /**
   * The caller's cursor: a seq, or a seq per session of the agent. A map is held only while it can
   * matter (see narrowAfter, forgetAfter): its size is the caller's to choose, up to a frame's.
   */
  #after: number | Readonly<Record<string, number>>;
  state: SubscriptionState = 'checking';

  constructor(
    /** Numbers the subscription within the hub; the id is "<connectionId>.<serial>". */
    readonly serial: number,
    readonly subscriber: Subscriber,
    /** The session subscribed to, or null for every session of the agent. */
    readonly sessionKey: string | null,
    readonly agentId: string,
    after: number | Readonly<Record<string, number>>,
  ) {
    // A session at 0 is where one not named starts: the entry says nothing.
    this.#after = typeof after === 'number' ? after : Object.fromEntries(Object.entries(after).filter(([, seq]) => seq > 0));
  }

  /** What the subscription still holds of the caller's cursor. */
  get after(): number | Readonly<Record<string, number>> {
    return this.#after;
  }

  /**
   * Keeps the cursors of the sessions the replay reads. Of any other, every event is past the
   * cursor: the check found it at or below the session's last seq, and events stored since have
   * higher seqs.
   */
  narrowAfter(replayed: readonly string[]): void {
    const after = this.#after;
    if (typeof after === 'number') return;
    this.#after = Object.fromEntries(replayed.flatMap((sessionKey) => (sessionKey in after ? [[sessionKey, after[sessionKey]!]] : [])));
  }

  /** Live: every event from now on is past the caller's cursor, for the reason narrowAfter gives. */
  forgetAfter(): void {
    if (typeof this.#after !== 'number') this.#after = 0;
  }

  /** Built when asked for (answers, unsubscribe) rather than held: one string less per connection. */
  get id(): string {
    return `${this.subscriber.connectionId}.${this.serial}`;
  }

  /** Last seq this subscription has seen of a session: sent, or skipped by the caller's cursor. */
  cursor(sessionKey: string): number {
    const sent = this.#sent;
    if (typeof sent === 'number') return sent;
    const seq = sent?.get(sessionKey);
    if (seq !== undefined) return seq;
    const after = this.#after;
    return typeof after === 'number' ? after : (after[sessionKey] ?? 0);
  }

  /** Records that `seq` of the session was sent. */
  advance(sessionKey: string, seq: number): void {
    if (this.sessionKey !== null) this.#sent = seq;
    else if (this.#settled) return;
    else if (this.#sent instanceof Map) this.#sent.set(sessionKey, seq);
    else this.#sent = new Map([[sessionKey, seq]]);
  }

  /**
   * Live, and past the commit of its replay's last read: from here on each event comes once, by
   * its own deliver(), in seq order per session. Only an event that read returned could come
   * again (its deliver() settles with the same commit), and those have all been delivered.
   */
  settle(): void {
    if (this.sessionKey !== null) return;
    this.#settled = true;
    this.#sent = undefined;
  }

  /** How many sessions' cursors it holds (memory per subscription; the tests' view). */
  get sessionsTracked(): number {
    return this.#sent instanceof Map ? this.#sent.size : this.#sent === undefined ? 0 : 1;
  }

  markDirty(sessionKey: string): void {
    (this.#dirty ??= new Set()).add(sessionKey);
  }

  /** Removes and returns the session marked dirty first; undefined once none is left. */
  takeDirty(): string | undefined {
    const dirty = this.#dirty;
    if (dirty === undefined) return undefined;
    for (const sessionKey of dirty) {
      dirty.delete(sessionKey);
      return sessionKey;
    }
    this.#dirty = undefined;
    return undefined;
  }
}

/**
 * The subscriptions under one key of an index: a lone one held as itself, more in a Set. Most
 * sessions have a single subscriber, and a Set costs ~200 B.
 */
type Members = Subscription | Set<Subscription>;

/**
 * The sessions and events a wake (or heartbeat) is to name. An event joins them only once stored:
 * plan() runs inside the store's transaction and puts it in `planned`, deliver() moves it over
 * once the commit succeeded. A batch that failed never reaches deliver(), so what is still planned
 * when the wake goes out (always a later turn of the event loop than the commit that planned it)
 * is dropped: a wake must not send an agent to look for an event that was never stored.
 */
interface Due {
  sessions: Set<string>;
  eventIds: string[];
  /** Event id → session key; created at first use (an agent that is never woken costs no Map). */
  planned: Map<string, string> | undefined;
}

interface AgentPresence {
  /** The agent's id, shared by all its subscriptions. */
  readonly agentId: string;
  /** Connections holding at least one subscription of the agent, with how many. */
  readonly connections: Map<Subscriber, number>;
  /**
   * Sessions and events that the next `event` wake names; the timer runs while a wake is due or
   * its window is open.
   */
  readonly wake: Due & { timer: NodeJS.Timeout | NodeJS.Immediate | undefined };
  /** Sessions and events that the next heartbeat names. */
  readonly heartbeat: Due;
}

export class DeliveryHub implements Delivery {
  readonly #store: EventStore;
  readonly #options: HubOptions;
  readonly #bySession = new Map<string, Members>();
  readonly #byAgentWide = new Map<string, Members>();
  /** A connection's subscriptions: the one it holds, or from the second on a Map by id. */
  readonly #byConnection = new Map<number, Subscription | Map<string, Subscription>>();
  /** Per connection with a replay under way or waiting: the last one's end, which the next waits for (see start). */
  readonly #replayLanes = new Map<number, Promise<void>>();
  /** Per agent with agent-wide replays running: how many, and the turns of those waiting (see AGENT_REPLAYS_AT_ONCE). */
  readonly #agentReplays = new Map<string, { running: number; waiting: Array<() => void> }>();
  readonly #agents = new Map<string, AgentPresence>();
  /**
   * The backlog wakes connections are owed (see #wakeForBacklog), by `backlogKey`: from a
   * connection's first subscription of an agent until the wake is pushed, or the connection lets
   * go of the agent. Held for a replay and a read: empty when nothing is subscribing.
   */
  readonly #backlog = new Map<string, { reading: boolean }>();
  readonly #heartbeat: NodeJS.Timeout;
  #nextSubscription = 1;

  constructor(store: EventStore, options: HubOptions) {
    this.#store = store;
    this.#options = options;
    this.#heartbeat = setInterval(() => this.#sendHeartbeats(), options.heartbeatIntervalMs);
    this.#heartbeat.unref();
  }

  /** The id of the connection's subscription to exactly this target (a session, or every session of the agent), if it holds one. */
  subscriptionTo(connectionId: number, { sessionKey, agentId }: SubscriptionTarget): string | undefined {
    return this.#subscriptionsOf(connectionId).find((subscription) => subscription.sessionKey === sessionKey && subscription.agentId === agentId)?.id;
  }

  subscriptionCount(connectionId: number): number {
    const own = this.#byConnection.get(connectionId);
    return own === undefined ? 0 : own instanceof Map ? own.size : 1;
  }

  /**
   * Registers a subscription once its cursor is checked: an `after` beyond a session's last seq
   * (seqs reissued after a data dir restore or reset) would skip that many of its next events
   * unseen, so the subscription is refused with the first such session. It is registered before
   * the check reads the store, so an event stored after that read cannot fall between the check
   * and the replay; and since seqs only grow, a cursor the check accepted stays within range. It
   * sends nothing until `start` (after the subscribe answer).
   */
  async subscribe(
    subscriber: Subscriber,
    target: SubscriptionTarget,
    after: number | Record<string, number>,
  ): Promise<Subscription | { ahead: CursorAhead }> {
    const subscription = this.#register(subscriber, target, after);
    const checked = cursorsToCheck(target, after);
    let lastSeqs: number[] = [];
    try {
      // A cursor of 0 is always in range: most subscriptions cost no read.
      if (checked.length > 0) lastSeqs = await this.#store.lastSeqs(checked.map(([sessionKey]) => sessionKey));
    } catch (error) {
      this.#remove(subscription);
      throw error;
    }
    const ahead = checked.findIndex(([, seq], i) => seq > lastSeqs[i]!);
    if (ahead !== -1) {
      this.#remove(subscription);
      const [sessionKey, seq] = checked[ahead]!;
      return { ahead: { sessionKey, after: seq, lastSeq: lastSeqs[ahead]! } };
    }
    // Its connection may have closed during the check.
    if (subscription.state === 'checking') {
      subscription.state = 'replaying';
      this.#join(subscription);
    }
    return subscription;
  }

  #register(subscriber: Subscriber, target: SubscriptionTarget, after: number | Record<string, number>): Subscription {
    // The target's fields, not the target: one object less per subscription, and the agent id
    // string the agent's other subscriptions already share.
    const shared = this.#agents.get(target.agentId)?.agentId ?? target.agentId;
    const subscription = new Subscription(this.#nextSubscription++, subscriber, target.sessionKey, shared, after);
    const { sessionKey, agentId } = subscription;
    addMember(sessionKey === null ? this.#byAgentWide : this.#bySession, sessionKey ?? agentId, subscription);
    const { connectionId } = subscriber;
    const own = this.#byConnection.get(connectionId);
    if (own === undefined) this.#byConnection.set(connectionId, subscription);
    else if (own instanceof Map) own.set(subscription.id, subscription);
    else this.#byConnection.set(connectionId, new Map([[own.id, own], [subscription.id, subscription]]));
    return subscription;
  }

  /**
   * The subscription passed its check: its connection now counts as the agent's, for wakes. Not
   * before: one the check refuses must neither be woken nor make an event's answer say "sent".
   */
  #join(subscription: Subscription): void {
    const { connections } = this.#presence(subscription.agentId);
    const count = connections.get(subscription.subscriber);
    connections.set(subscription.subscriber, (count ?? 0) + 1);
    if (count === undefined) this.#backlog.set(backlogKey(subscription), { reading: false });
  }

  /**
   * A connection's first subscription of an agent wakes it, once a replay of it is done, for the
   * agent's sessions with pending events: reason "backlog". What came while it was away was
   * answered "no-agent-connected", and what it was promised (a wake not yet sent, a heartbeat)
   * went with its connection or with a restart of the gateway: without this, an agent that acts
   * when woken would never act on them. Per connection, not per agent: another connection of the
   * agent (a watcher) being here says nothing of what this one has seen. After a replay, so that
   * an agent that reads what was pushed to it when woken finds the events there. Sent unless the
   * connection let go of the agent meanwhile (then a subscription again owes a wake of its own).
   */
  async #wakeForBacklog(subscription: Subscription): Promise<void> {
    const key = backlogKey(subscription);
    const owed = this.#backlog.get(key);
    if (owed === undefined || owed.reading) return;
    owed.reading = true;
    let sessions: string[];
    try {
      sessions = await this.#store.pendingSessionKeys(subscription.agentId);
    } catch {
      // Still owed: the next replay of the agent on this connection, or the end of one of its
      // subscriptions, reads again. The events stay pending meanwhile.
      owed.reading = false;
      return;
    }
    if (this.#backlog.get(key) !== owed) return;
    this.#backlog.delete(key);
    if (sessions.length === 0) return;
    for (const frame of wakeFrames(subscription.agentId, 'backlog', sessions)) if (!this.#push(subscription.subscriber, frame)) return;
  }

  /** Replays the backlog, then goes live. Errors end the replay; the events stay pending. */
  start(subscription: Subscription): Promise<void> {
    // One replay at a time on a connection: each holds a page of its backlog (up to MAX_READ_BYTES) while
    // it waits for the socket, and a client that subscribed 256 times to a large backlog and read
    // nothing had them all held at once, past the gateway's heap (QA: an out-of-memory crash).
    const { connectionId } = subscription.subscriber;
    const replayed = (this.#replayLanes.get(connectionId) ?? Promise.resolve()).then(() => this.#replayInTurn(subscription));
    const lane = replayed.then(
      () => {},
      () => {},
    );
    this.#replayLanes.set(connectionId, lane);
    void lane.then(() => {
      if (this.#replayLanes.get(connectionId) === lane) this.#replayLanes.delete(connectionId);
    });
    return replayed.then(
      () => {
        // Only a replay that went live, and the last of the connection's replays of the agent.
        if (subscription.state === 'live' && !this.#replaying(subscription)) void this.#wakeForBacklog(subscription);
      },
      () => {
        // Going live after a failed replay would leave a gap the client cannot see: its cursor would
        // move past the missing events. Closing makes it resubscribe from what it really has.
        this.#remove(subscription);
        void subscription.subscriber.close(CloseCode.INTERNAL_ERROR, 'replay failed; reconnect to resume');
      },
    );
  }

  unsubscribe(connectionId: number, subscriptionId: string): boolean {
    const own = this.#byConnection.get(connectionId);
    const subscription = own instanceof Map ? own.get(subscriptionId) : own?.id === subscriptionId ? own : undefined;
    if (!subscription) return false;
    this.#remove(subscription);
    return true;
  }

  /** Ends every subscription of a connection that closed. */
  dropConnection(connectionId: number): void {
    const subscriptions = this.#subscriptionsOf(connectionId);
    // Owed nothing once gone: no subscription of it should read the backlog as the others end.
    for (const subscription of subscriptions) this.#backlog.delete(backlogKey(subscription));
    for (const subscription of subscriptions) this.#remove(subscription);
  }

  /** The agents a connection's subscriptions are to, each once: for the log of one cut off. */
  agentsOf(connectionId: number): string[] {
    return [...new Set(this.#subscriptionsOf(connectionId).map((subscription) => subscription.agentId))];
  }

  /** Whether a subscription of the same connection and agent is still replaying. */
  #replaying({ subscriber, agentId }: Pick<Subscription, 'subscriber' | 'agentId'>): boolean {
    return this.#subscriptionsOf(subscriber.connectionId).some((other) => other.agentId === agentId && other.state === 'replaying');
  }

  #subscriptionsOf(connectionId: number): Subscription[] {
    const own = this.#byConnection.get(connectionId);
    return own === undefined ? [] : own instanceof Map ? [...own.values()] : [own];
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
        : receiverCount(this.#bySession.get(event.sessionKey), event) + receiverCount(this.#byAgentWide.get(event.route.agentId), event);
    return { wake: this.#planWake(event), receivers };
  }

  /**
   * The event is stored: the wake planned for it may name it, and it is pushed to its live
   * subscribers, with one "delivered" trace for all of them (a trace row per subscriber would
   * cost a fan-out of N a row per push).
   */
  deliver(event: RoutedEvent, outcome: { status: string }): void {
    const presence = this.#agents.get(event.route.agentId);
    if (presence) {
      confirm(presence.wake, event.eventId);
      confirm(presence.heartbeat, event.eventId);
    }
    if (outcome.status === 'deduplicated') return;
    const sessionMembers = this.#bySession.get(event.sessionKey);
    const agentMembers = this.#byAgentWide.get(event.route.agentId);
    if (!sessionMembers && !agentMembers) return;
    const eventJson = JSON.stringify(toStoredEvent(event));
    const reached: number[] = [];
    this.#deliverTo(sessionMembers, event, eventJson, reached);
    this.#deliverTo(agentMembers, event, eventJson, reached);
    if (reached.length === 0) return;
    // A connection with two subscriptions that both match is named once.
    const connectionIds = reached.length === 1 ? String(reached[0]) : [...new Set(reached)].join(',');
    this.#store.recordTrace([delivered(event.eventId, connectionIds, reached.length, false)]);
  }

  /** Pushes to each member that is live, or marks the session dirty for one not live yet. */
  #deliverTo(members: Members | undefined, event: RoutedEvent, eventJson: string, reached: number[]): void {
    if (members === undefined) return;
    if (members instanceof Set) {
      for (const subscription of members) this.#deliverLive(subscription, event, eventJson, reached);
    } else {
      this.#deliverLive(members, event, eventJson, reached);
    }
  }

  #deliverLive(subscription: Subscription, event: RoutedEvent, eventJson: string, reached: number[]): void {
    if (subscription.state !== 'live') subscription.markDirty(event.sessionKey);
    else if (this.#send(subscription, event.sessionKey, event.seq, eventJson) === 'sent') reached.push(subscription.subscriber.connectionId);
  }

  // ------------------------------------------------------------------ replay

  /** A session's replay at once; an agent-wide one in its turn among the agent's (see AGENT_REPLAYS_AT_ONCE). */
  async #replayInTurn(subscription: Subscription): Promise<void> {
    if (subscription.sessionKey !== null) return this.#replay(subscription);
    const { agentId } = subscription;
    const slots = this.#agentReplays.get(agentId) ?? { running: 0, waiting: [] };
    this.#agentReplays.set(agentId, slots);
    if (slots.running < AGENT_REPLAYS_AT_ONCE) slots.running++;
    // The turn of the one that ends passes to it, its count with it.
    else await new Promise<void>((resolve) => slots.waiting.push(resolve));
    try {
      // Ended while it waited: nothing to read.
      if (subscription.state !== 'ended') await this.#replay(subscription);
    } finally {
      const next = slots.waiting.shift();
      if (next) next();
      else if (--slots.running === 0) this.#agentReplays.delete(agentId);
    }
  }

  async #replay(subscription: Subscription): Promise<void> {
    const { sessionKey, agentId } = subscription;
    const sessions = sessionKey !== null ? [sessionKey] : await this.#store.pendingSessionKeys(agentId);
    subscription.narrowAfter(sessions);
    for (const sessionKey of sessions) await this.#catchUp(subscription, sessionKey);
    for (let sessionKey; subscription.state !== 'ended' && (sessionKey = subscription.takeDirty()) !== undefined; ) {
      await this.#catchUp(subscription, sessionKey);
    }
    // No await between the last read and this line: any event stored after that read is
    // delivered live, and one the read already returned is below the cursor.
    if (subscription.state === 'replaying') {
      subscription.state = 'live';
      subscription.forgetAfter();
      // The deliveries of events stored with that read run as its commit settles, in this turn's
      // promise jobs: all have run by the next turn.
      setImmediate(() => subscription.settle());
    }
  }

  async #catchUp(subscription: Subscription, sessionKey: string): Promise<void> {
    const parsed = parseSessionKey(sessionKey);
    if (!parsed.ok) return;
    for (;;) {
      if (subscription.state === 'ended') return;
      const page = await this.#store.peek(sessionKey, { after: subscription.cursor(sessionKey), limit: REPLAY_PAGE_SIZE });
      const traces: TraceEntry[] = [];
      try {
        for (const record of page.events) {
          // Per event, not per page: a page of large events alone could pass the cut-off.
          await this.#waitForRoom(subscription);
          const eventJson = JSON.stringify(toStoredEvent({ ...record, route: parsed.value.route }));
          const sent = this.#send(subscription, sessionKey, record.seq, eventJson);
          if (sent === 'closed') return;
          if (sent === 'sent') traces.push(delivered(record.eventId, String(subscription.subscriber.connectionId), 1, true));
        }
      } finally {
        if (traces.length > 0) this.#store.recordTrace(traces);
      }
      if (!page.more) return;
    }
  }

  /** Replay must not be what makes a subscriber "slow": it waits for the socket to drain. */
  async #waitForRoom(subscription: Subscription): Promise<void> {
    // Replay is unhurried: each pause lets the socket drain and live traffic through. Longer and
    // longer for a client that reads nothing: a thousand such connections checked every 5 ms took
    // most of a core.
    for (let pause = REPLAY_FIRST_PAUSE_MS; subscription.state !== 'ended' && subscription.subscriber.bufferedAmount > this.#options.replayHighWaterBytes; ) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, REPLAY_LONGEST_PAUSE_MS);
    }
  }

  /**
   * Sends an event unless the subscription already has it (`had`: nothing sent, so nothing to
   * count or trace as delivered); advances the cursor. `closed`: the subscription or its
   * connection is gone, or the connection was just cut as too slow.
   */
  #send(subscription: Subscription, sessionKey: string, seq: number, eventJson: string): 'sent' | 'had' | 'closed' {
    if (subscription.state === 'ended') return 'closed';
    if (seq <= subscription.cursor(sessionKey)) return 'had';
    subscription.advance(sessionKey, seq);
    // The id is digits and a dot: nothing in it needs escaping.
    const frame = `{"jsonrpc":"2.0","method":"session.event","params":{"subscriptionId":"${subscription.id}","event":${eventJson}}}`;
    return this.#push(subscription.subscriber, frame) ? 'sent' : 'closed';
  }

  /**
   * Pushes a frame; false when the connection takes nothing more (cut as too slow, or closed by
   * the gateway). It is then no receiver, and no agent's presence (a wake `sent` to it would reach
   * no one), from now on rather than once its socket has closed, which for a slow consumer may be
   * half a minute later.
   */
  #push(subscriber: Subscriber, frame: string): boolean {
    if (subscriber.push(frame)) return true;
    this.dropConnection(subscriber.connectionId);
    return false;
  }

  #remove(subscription: Subscription): void {
    if (subscription.state === 'ended') return;
    const joined = subscription.state !== 'checking';
    subscription.state = 'ended';
    const { sessionKey, agentId, subscriber } = subscription;
    removeMember(sessionKey === null ? this.#byAgentWide : this.#bySession, sessionKey ?? agentId, subscription);
    const { connectionId } = subscriber;
    const own = this.#byConnection.get(connectionId);
    if (own === subscription) {
      this.#byConnection.delete(connectionId);
    } else if (own instanceof Map) {
      own.delete(subscription.id);
      const [last, more] = own.values();
      if (last === undefined) this.#byConnection.delete(connectionId);
      else if (more === undefined) this.#byConnection.set(connectionId, last);
    }
    if (!joined) return;
    const presence = this.#agents.get(agentId);
    const count = presence?.connections.get(subscriber);
    if (!presence || count === undefined) return;
    if (count > 1) {
      presence.connections.set(subscriber, count - 1);
      // Its connection still holds the agent through others: one that is live wakes it for the
      // backlog now if none is replaying (whose replay's end would).
      const live = this.#subscriptionsOf(subscriber.connectionId).find((other) => other.agentId === agentId && other.state === 'live');
      if (live && !this.#replaying(live)) void this.#wakeForBacklog(live);
    } else {
      presence.connections.delete(subscriber);
      this.#backlog.delete(backlogKey(subscription));
    }
    if (presence.connections.size === 0) {
      clearTimer(presence.wake.timer);
      this.#agents.delete(agentId);
    }
  }

  // ------------------------------------------------------------------ wake

  #presence(agentId: string): AgentPresence {
    let presence = this.#agents.get(agentId);
    if (!presence) {
      presence = {
        agentId,
        connections: new Map(),
        wake: { sessions: new Set(), eventIds: [], planned: undefined, timer: undefined },
        heartbeat: { sessions: new Set(), eventIds: [], planned: undefined },
      };
      this.#agents.set(agentId, presence);
    }
    return presence;
  }

  /**
   * The first `now` event wakes the agent at the end of this turn (so events committed together
   * share it); then a window of WAKE_COALESCE_MS opens, and the `now` events in it share one
   * follow-up wake at its end, which opens the next window. So a burst wakes the agent at most
   * once per window, and every event is named by a wake that goes out after it was stored. Not
   * even for a session the last wake named may one be left out: the agent may have looked there
   * already, or not be subscribed to it (then nothing is pushed to it either).
   */
  #planWake(event: RoutedEvent): WakeOutcome {
    const { agentId } = event.route;
    const presence = this.#agents.get(agentId);
    if (!presence) {
      return {
        status: 'no-agent-connected',
        message: `no connection subscribes to agent "${agentId}"; the event waits in the session queue, and the agent is woken for it when it subscribes`,
      };
    }
    if (event.mode === 'next-heartbeat') {
      plan(presence.heartbeat, event);
      return {
        status: 'next-heartbeat',
        message: `agent "${agentId}" is told at its next heartbeat (every ${formatInterval(this.#options.heartbeatIntervalMs)})`,
      };
    }
    const { wake } = presence;
    plan(wake, event);
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
    wake.planned = undefined;
    if (wake.sessions.size === 0) return;
    this.#notifyAgent(agentId, presence, 'event', take(wake));
    // Its last connection cut as too slow by the wake: the agent is gone, and with it the window.
    if (this.#agents.get(agentId) !== presence) return;
    wake.timer = setTimeout(() => this.#sendWake(agentId), WAKE_COALESCE_MS);
  }

  #sendHeartbeats(): void {
    for (const [agentId, presence] of this.#agents) void this.#sendHeartbeat(agentId, presence);
  }

  /**
   * Names the sessions of the events due since the last heartbeat that still hold pending events:
   * in up to a minute, an agent handles much of what it was pushed, and a wake to look at an empty
   * session is noise (QA). Should the store not answer, it names them all: better a look for
   * nothing than an event never looked for.
   */
  async #sendHeartbeat(agentId: string, presence: AgentPresence): Promise<void> {
    const due = take(presence.heartbeat);
    if (due.sessions.length > 0) {
      const pending = await this.#store.pendingSessionKeys(agentId).then(
        (keys) => new Set(keys),
        () => undefined,
      );
      if (pending !== undefined) due.sessions = due.sessions.filter((sessionKey) => pending.has(sessionKey));
    }
    this.#notifyAgent(agentId, presence, 'heartbeat', due);
  }

  #notifyAgent(agentId: string, presence: AgentPresence, reason: AgentWakeNotification['reason'], { sessions, eventIds }: Named): void {
    const frames = wakeFrames(agentId, reason, sessions);
    let sent = 0;
    let afterReplay = 0;
    for (const subscriber of [...presence.connections.keys()]) {
      if (reason === 'event' && this.#replaying({ subscriber, agentId })) {
        this.#oweBacklogWake({ subscriber, agentId });
        afterReplay++;
      } else if (frames.every((frame) => this.#push(subscriber, frame))) sent++;
    }
    const at = Date.now();
    const detail: TraceDetail = { reason, connections: sent };
    if (afterReplay > 0) detail['afterReplay'] = afterReplay;
    // The store leaves out the events no longer pending (see TraceEntry's step).
    this.#store.recordTrace(eventIds.map((eventId) => ({ eventId, step: 'wake', at, detail })));
  }

  /**
   * A connection still replaying the agent's backlog would get an event's wake before the event,
   * which reaches it only as its replay goes on (QA: ~100 frames before it). It gets the backlog
   * wake instead, once its replays of the agent are done (see #wakeForBacklog), which names every
   * session with pending events, that event's too. A backlog read already under way may have read
   * before the event was stored: a new one is owed, and that read sends nothing.
   */
  #oweBacklogWake(subscription: Pick<Subscription, 'subscriber' | 'agentId'>): void {
    const key = backlogKey(subscription);
    if (this.#backlog.get(key)?.reading !== false) this.#backlog.set(key, { reading: false });
  }
}

/** What a wake names: its sessions, and the events it is for (their traces get its step). */
interface Named {
  sessions: string[];
  eventIds: string[];
}

/**
 * Empties `due` for the wake that goes out now, and returns what it names. What is still planned
 * is dropped: its batch failed (see Due).
 */
function take(due: Due): Named {
  const named = { sessions: [...due.sessions], eventIds: due.eventIds };
  due.planned = undefined;
  due.sessions.clear();
  due.eventIds = [];
  return named;
}

/** A connection's subscriptions of an agent share one backlog wake. */
function backlogKey({ subscriber, agentId }: Pick<Subscription, 'subscriber' | 'agentId'>): string {
  return `${subscriber.connectionId} ${agentId}`;
}

/**
 * The agent.wake frames naming `sessions`, in order, each naming at most MAX_WAKE_SESSIONS_BYTES
 * of them; one (naming none) when there are none, as a heartbeat may.
 */
export function wakeFrames(agentId: string, reason: AgentWakeNotification['reason'], sessions: readonly string[]): string[] {
  const at = new Date().toISOString();
  const frame = (part: string[]) => {
    const params: AgentWakeNotification = { agentId, reason, sessions: part, at };
    return JSON.stringify({ jsonrpc: '2.0', method: 'agent.wake', params });
  };
  const frames: string[] = [];
  let part: string[] = [];
  let bytes = 0;
  for (const sessionKey of sessions) {
    const size = Buffer.byteLength(JSON.stringify(sessionKey)) + 1;
    if (part.length > 0 && bytes + size > MAX_WAKE_SESSIONS_BYTES) {
      frames.push(frame(part));
      part = [];
      bytes = 0;
    }
    part.push(sessionKey);
    bytes += size;
  }
  frames.push(frame(part));
  return frames;
}

function plan(due: Due, event: RoutedEvent): void {
  (due.planned ??= new Map()).set(event.eventId, event.sessionKey);
}

/** The planned event is stored: the wake names it. */
function confirm(due: Due, eventId: string): void {
  const sessionKey = due.planned?.get(eventId);
  if (sessionKey === undefined) return;
  due.planned!.delete(eventId);
  due.sessions.add(sessionKey);
  due.eventIds.push(eventId);
}

/**
 * `connectionIds`: the ids of the connections reached, comma-separated. Not `connections`: the
 * wake step counts its connections under that name (rows written before said it of these ids too;
 * the store reads those as `connectionIds`).
 */
function delivered(eventId: string, connectionIds: string, subscriptions: number, replay: boolean): TraceEntry {
  return { eventId, step: 'delivered', at: Date.now(), detail: { connectionIds, subscriptions, replay } };
}

/**
 * Subscriptions the event will be sent to: not one still being checked (it may be refused), nor
 * one whose cursor already passed its seq (it would skip the event).
 */
function receiverCount(members: Members | undefined, event: RoutedEvent): number {
  if (members === undefined) return 0;
  if (!(members instanceof Set)) return receives(members, event) ? 1 : 0;
  let count = 0;
  for (const subscription of members) if (receives(subscription, event)) count++;
  return count;
}

function receives(subscription: Subscription, event: RoutedEvent): boolean {
  return subscription.state !== 'checking' && event.seq > subscription.cursor(event.sessionKey);
}

/** The sessions whose cursor is past 0, with it: what a subscribe checks against the store. */
function cursorsToCheck(target: SubscriptionTarget, after: number | Readonly<Record<string, number>>): Array<[string, number]> {
  if (typeof after !== 'number') return Object.entries(after).filter(([, seq]) => seq > 0);
  return after > 0 && target.sessionKey !== null ? [[target.sessionKey, after]] : [];
}

function addMember<K>(index: Map<K, Members>, key: K, subscription: Subscription): void {
  const members = index.get(key);
  if (members === undefined) index.set(key, subscription);
  else if (members instanceof Set) members.add(subscription);
  else index.set(key, new Set([members, subscription]));
}

/** Removes the subscription; a Set left with one member goes back to holding it alone. */
function removeMember<K>(index: Map<K, Members>, key: K, subscription: Subscription): void {
  const members = index.get(key);
  if (members === subscription) {
    index.delete(key);
  } else if (members instanceof Set) {
    members.delete(subscription);
    const [last, more] = members;
    if (last === undefined) index.delete(key);
    else if (more === undefined) index.set(key, last);
  }
}

function formatInterval(ms: number): string {
  return ms < 1000 || ms % 1000 !== 0 ? `${ms} ms` : `${ms / 1000} s`;
}

function clearTimer(timer: NodeJS.Timeout | NodeJS.Immediate | undefined): void {
  if (timer === undefined) return;
  clearTimeout(timer as NodeJS.Timeout);
  clearImmediate(timer as NodeJS.Immediate);
}
