/**
 * How much event text the answers to one frame may carry. A frame is one request or a batch of up
 * to MAX_BATCH_LENGTH; its session.peek and session.drain answers share one budget of
 * MAX_READ_TEXT_BYTES, so a batch of reads answers no more than a single read may. Per read, a
 * batch of a hundred peeks answered ~200 MiB in one frame, and a few such frames exhausted the
 * gateway's heap; a batch of drains consumed events in an answer too large for the client to
 * receive (MAX_CLIENT_FRAME_BYTES).
 */
import { MAX_READ_TEXT_BYTES } from '../protocol/constants.js';

export interface ReadBudget {
  /** Text bytes (UTF-8) left. */
  textBytes: number;
}

/** A fresh budget, for one frame. */
export function readBudget(): ReadBudget {
  return { textBytes: MAX_READ_TEXT_BYTES };
}

/**
 * The longest prefix of `events` whose texts fit what is left of `budget`, taken from it. At least
 * one event when nothing was taken before, so a lone read always makes progress; a read that finds
 * too little left returns none, and its caller is told there is more.
 */
export function takeWithinBudget<E extends { text: string }>(events: E[], budget: ReadBudget): E[] {
  const untouched = budget.textBytes === MAX_READ_TEXT_BYTES;
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    const next = bytes + Buffer.byteLength(events[i]!.text, 'utf8');
    if (next > budget.textBytes && !(i === 0 && untouched)) {
      budget.textBytes -= bytes;
      return events.slice(0, i);
    }
    bytes = next;
  }
  budget.textBytes = Math.max(0, budget.textBytes - bytes);
  return events;
}
