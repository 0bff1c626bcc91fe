/**
 * The pending events of each session, in seq order, by the rowid of their row in the events table:
 * what the index events_by_session (session_id, seq) held until schema 4.
 *
 * Why in memory: that index keeps each session's entries together, so entries of different
 * sessions never share a leaf, and a batch dirtied one leaf of it per session it touched: ~15 of
 * the ~22 pages a commit of 15 appends over 15 sessions writes, ~200 of a 520-append commit's.
 * Every dirty page is a WAL frame written at commit and copied again at the next checkpoint. With
 * the index dropped the gateway answered 18-25% more durable calls per second with one call in
 * flight per connection, and 3-10% more with 64 (bench/README.md, round 6). What it cost the
 * reads (a session's events by seq) this does with a few numbers per pending event; pending
 * events are bounded per session (--max-pending), and the whole index is rebuilt from one scan of
 * the events table when the store opens.
 *
 * Kept in step with the transaction as the commit queue reports it (see TransactionObserver):
 * every change made by an operation whose savepoint is rolled back is taken back, and so is every
 * change of a batch that is rolled back or fails to commit.
 */
import type { TransactionObserver } from './commit-queue.js';

/** A pending event: its seq in its session, and its row's id. */
export interface PendingRef {
  seq: number;
  id: number;
}

/**
 * One session's pending events, in seq order (and so in id order: both grow with each append):
 * those from `head` on. Removing from the front, as acks, drains and drops at the cap do, only
 * moves `head` (and taking that back moves it back): a session may hold up to 1,000,000 pending
 * events, and splicing the front off arrays that long cost ~0.3 ms per append at the cap, and
 * thousands of times that to take a batch of them back. The dead front is cut off once the batch
 * has committed.
 */
interface Queue {
  seqs: number[];
  ids: number[];
  head: number;
}

export class PendingIndex implements TransactionObserver {
  readonly #bySession = new Map<number, Queue>();
  /** How to take back each change since the batch began, oldest first. */
  readonly #undo: Array<() => void> = [];
  /** Where the running operation's changes start in #undo. */
  #operationStart = 0;
  /** Queues whose front was removed in the running batch: cut once it has committed. */
  readonly #trimmed = new Set<Queue>();

  /**
   * Builds the index from the rows of the events table, given in id order. A session's seqs grow
   * with its rows' ids for every row this store writes; rows that migration 2 numbered by time
   * from a schema-1 database whose clock stepped back may not, and their session is sorted.
   */
  static fromRows(rows: Iterable<{ id: number; sessionId: number; seq: number }>): PendingIndex {
    const index = new PendingIndex();
    const unordered = new Set<Queue>();
    for (const { id, sessionId, seq } of rows) {
      const queue = index.#queue(sessionId);
      if (queue.seqs.length > 0 && queue.seqs.at(-1)! >= seq) unordered.add(queue);
      queue.seqs.push(seq);
      queue.ids.push(id);
    }
    for (const queue of unordered) {
      const refs = queue.seqs.map((seq, i) => ({ seq, id: queue.ids[i]! })).sort((a, b) => a.seq - b.seq);
      queue.seqs = refs.map((ref) => ref.seq);
      queue.ids = refs.map((ref) => ref.id);
    }
    return index;
  }

  /** Sessions with pending events. */
  sessionIds(): IterableIterator<number> {
    return this.#bySession.keys();
  }

  /** The newest pending event of the session. */
  newest(sessionId: number): PendingRef | undefined {
    const queue = this.#bySession.get(sessionId);
    return queue && { seq: queue.seqs.at(-1)!, id: queue.ids.at(-1)! };
  }

  /** Up to `limit` pending events of the session with a seq above `after`, oldest first. */
  after(sessionId: number, after: number, limit: number): PendingRef[] {
    const queue = this.#bySession.get(sessionId);
    if (!queue) return [];
    const from = firstAbove(queue, after);
    return refs(queue, from, Math.min(queue.seqs.length, from + limit));
  }

  /** The pending events of the session with a seq above `after`: how far a row with that last seq lags. */
  countAfter(sessionId: number, after: number): number {
    const queue = this.#bySession.get(sessionId);
    return queue ? queue.seqs.length - firstAbove(queue, after) : 0;
  }

  /** The pending events of the session with a seq in (after, upTo]: what an ack or a drain of that range consumes. */
  countBetween(sessionId: number, after: number, upTo: number): number {
    return this.countAfter(sessionId, after) - this.countAfter(sessionId, upTo);
  }

  /** Records an append: its seq is above every pending one of the session. */
  add(sessionId: number, seq: number, id: number): void {
    const queue = this.#queue(sessionId);
    queue.seqs.push(seq);
    queue.ids.push(id);
    this.#undo.push(() => {
      queue.seqs.pop();
      queue.ids.pop();
      if (queue.seqs.length === queue.head) this.#bySession.delete(sessionId);
    });
  }

  /** Removes, and returns, the session's pending events with a seq in (after, upTo]. */
  remove(sessionId: number, after: number, upTo: number): PendingRef[] {
    const queue = this.#bySession.get(sessionId);
    if (!queue) return [];
    const from = firstAbove(queue, after);
    const to = firstAbove(queue, upTo);
    if (to <= from) return [];
    const removed = refs(queue, from, to);
    if (from === queue.head) {
      queue.head = to;
      this.#trimmed.add(queue);
      this.#undo.push(() => {
        queue.head = from;
        this.#bySession.set(sessionId, queue);
      });
    } else {
      const seqs = queue.seqs.splice(from, to - from);
      const ids = queue.ids.splice(from, to - from);
      this.#undo.push(() => {
        // concat, not splice(from, 0, ...seqs): a spread of a long removal would pass more
        // arguments than a call takes.
        queue.seqs = queue.seqs.slice(0, from).concat(seqs, queue.seqs.slice(from));
        queue.ids = queue.ids.slice(0, from).concat(ids, queue.ids.slice(from));
        this.#bySession.set(sessionId, queue);
      });
    }
    if (queue.seqs.length === queue.head) this.#bySession.delete(sessionId);
    return removed;
  }

  batchBegun(): void {
    this.#undo.length = 0;
  }

  operationStart(): void {
    this.#operationStart = this.#undo.length;
  }

  operationRolledBack(): void {
    this.#takeBack(this.#operationStart);
  }

  beforeCommit(): void {}

  batchCommitted(): void {
    this.#undo.length = 0;
    for (const queue of this.#trimmed) {
      queue.seqs.splice(0, queue.head);
      queue.ids.splice(0, queue.head);
      queue.head = 0;
    }
    this.#trimmed.clear();
  }

  batchRolledBack(): void {
    this.#takeBack(0);
    // Every head is back where the batch found it: at 0, where the last commit left it.
    this.#trimmed.clear();
  }

  #takeBack(downTo: number): void {
    while (this.#undo.length > downTo) this.#undo.pop()!();
  }

  #queue(sessionId: number): Queue {
    let queue = this.#bySession.get(sessionId);
    if (!queue) {
      queue = { seqs: [], ids: [], head: 0 };
      this.#bySession.set(sessionId, queue);
    }
    return queue;
  }
}

/** The position of the queue's first pending event with a seq above `seq`. */
function firstAbove({ seqs, head }: Queue, seq: number): number {
  let low = head;
  let high = seqs.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (seqs[middle]! <= seq) low = middle + 1;
    else high = middle;
  }
  return low;
}

function refs(queue: Queue, from: number, to: number): PendingRef[] {
  const result: PendingRef[] = [];
  for (let i = from; i < to; i++) result.push({ seq: queue.seqs[i]!, id: queue.ids[i]! });
  return result;
}
