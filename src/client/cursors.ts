/**
 * Where a subscription resumes after a reconnect, and which events a replay brings again: the
 * last seq seen of each session (its cursor), sent back as the resubscribe's `after`.
 */
import { MAX_FRAME_BYTES } from '../protocol/constants.js';
import { parseSessionKey } from '../protocol/session-key.js';
import type { StoredEvent } from '../protocol/wire-types.js';

/**
 * Most bytes of a resubscribe's `after` map, as JSON: what a frame holds, less room for the rest
 * of the request. The cursors of sessions seen but not yet acked can outgrow it (730 sessions under
 * keys of 500 CJK characters, an agent working through a backlog: QA), and a resubscribe too large
 * to send ended the client. Past it, the cursors that do not fit are left out: their sessions are
 * replayed from their first pending event (or the caller's `after`), and what was delivered of
 * them before is known by seq and event id (see #deliveredBefore). Kept to drop what is replayed,
 * the cursors would drop events reissued under the same seqs after a data dir restore too,
 * unseen, where a cursor sent is refused (AFTER_OUT_OF_RANGE) and says so (review).
 */
export const RESUME_AFTER_BYTES = MAX_FRAME_BYTES - 16 * 1024;

export class SubscriptionCursors {
  /** Last seq seen per (canonical) session key. */
  readonly seqs = new Map<string, number>();
  /** The id of the event each cursor stands at. */
  readonly #eventIds = new Map<string, string>();
  /**
   * Sessions whose cursors a resubscribe had no room for: the last event delivered of each, until
   * the replay, which starts at their first pending event, has passed it (client QA: an events()
   * loop had such events queued twice, and was handed them again after acking them).
   */
  readonly #leftOut = new Map<string, { seq: number; eventId: string }>();

  /** The session subscribed to; undefined for an agent subscription. */
  readonly #sessionKey: string | undefined;
  /** The caller's `after`: a seq for a session subscription, a map for an agent one. */
  readonly #baseAfter: number | Record<string, number> | undefined;

  constructor(sessionKey: string | undefined, baseAfter: number | Record<string, number> | undefined) {
    this.#sessionKey = sessionKey;
    this.#baseAfter = baseAfter;
  }

  /** Notes the event as seen; true when it is new to the subscription, false for one it delivered already. */
  take(event: StoredEvent): boolean {
    if (event.seq <= (this.seqs.get(event.sessionKey) ?? -1)) return false;
    this.seqs.set(event.sessionKey, event.seq);
    this.#eventIds.set(event.sessionKey, event.eventId);
    return !this.#deliveredBefore(event);
  }

  /**
   * An agent subscription's: the client consumed (acked, drained) the session up to
   * `consumedUpTo`. Its cursor, at or below that, is let go (see the client's #noteAck for why),
   * and so is what was delivered of it before it was left out: none of that is pending any more.
   */
  letGo(sessionKey: string, consumedUpTo: number): void {
    if (this.#sessionKey !== undefined) return;
    if ((this.seqs.get(sessionKey) ?? Infinity) <= consumedUpTo) {
      this.seqs.delete(sessionKey);
      this.#eventIds.delete(sessionKey);
    }
    if ((this.#leftOut.get(sessionKey)?.seq ?? Infinity) <= consumedUpTo) this.#leftOut.delete(sessionKey);
  }

  /**
   * Where a (re)subscription resumes: the caller's `after`, advanced by what this subscription has
   * seen; the cursors past what a frame holds are left out (see RESUME_AFTER_BYTES). The cursors
   * are keyed by the events' keys, canonical; the caller's may be spelled otherwise (`main`,
   * upper-case keywords), and a session named twice with two seqs is refused: the caller's entry
   * for a session the client has seen events of is left out.
   */
  resumeAfter(): number | Record<string, number> | undefined {
    if (this.#sessionKey !== undefined) return [...this.seqs.values()][0] ?? this.#baseAfter;
    if (this.seqs.size === 0) return this.#baseAfter;
    const base = typeof this.#baseAfter === 'object' ? this.#baseAfter : {};
    // The caller's entries go whole (theirs to fit a frame), each unless a cursor replaces it: the
    // cursors take what room they leave, and a session left out resumes from the caller's.
    let bytes = Buffer.byteLength(JSON.stringify(base));
    const after: Record<string, number> = {};
    for (const [sessionKey, seq] of this.seqs) {
      bytes += Buffer.byteLength(JSON.stringify(sessionKey)) + String(seq).length + 2;
      if (bytes > RESUME_AFTER_BYTES) {
        this.#leaveOutFrom(sessionKey);
        break;
      }
      after[sessionKey] = seq;
    }
    for (const [sessionKey, seq] of Object.entries(base)) if (!this.seqs.has(canonicalKey(sessionKey))) after[sessionKey] = seq;
    return after;
  }

  /** Leaves out the cursor of `first` and of every session after it, in the map's order. */
  #leaveOutFrom(first: string): void {
    let leaving = false;
    for (const [sessionKey, seq] of [...this.seqs]) {
      leaving ||= sessionKey === first;
      if (!leaving) continue;
      this.#leftOut.set(sessionKey, { seq, eventId: this.#eventIds.get(sessionKey)! });
      this.seqs.delete(sessionKey);
      this.#eventIds.delete(sessionKey);
    }
  }

  /**
   * Whether the replay of a session left out brings an event delivered before. A replay comes in
   * seq order: once past the last event delivered, the rest is new. Up to it, an event with a newer
   * id than that one is new too: a data dir restore issued its seq again, and event ids sort by
   * when they were issued (UUIDv7, see src/store/ids.ts).
   */
  #deliveredBefore(event: StoredEvent): boolean {
    const before = this.#leftOut.get(event.sessionKey);
    if (before === undefined) return false;
    if (event.seq > before.seq) {
      this.#leftOut.delete(event.sessionKey);
      return false;
    }
    return event.eventId <= before.eventId;
  }
}

/** The key as the gateway names its session; as given when it does not parse (the gateway says why). */
export function canonicalKey(sessionKey: string): string {
  const parsed = parseSessionKey(sessionKey);
  return parsed.ok ? parsed.value.sessionKey : sessionKey;
}
