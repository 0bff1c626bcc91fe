import type { ReadBudget } from '../store/read-budget.js';
import type { Principal } from './auth.js';
import type { Subscriber } from './hub.js';

/** How a request reached the gateway; recorded in traces and the same for every method. */
export type Ingress = 'websocket' | 'http-rpc' | 'http-hook';

/** What a method handler knows of its caller, whichever ingress the request came through. */
export interface CallContext {
  readonly ingress: Ingress;
  readonly principal: Principal;
  readonly remoteAddress: string;
  /** The WebSocket connection's id; null over HTTP. */
  readonly connectionId: number | null;
  /** Where notifications can be pushed; null over HTTP, which has nowhere to push. */
  readonly subscriber: Subscriber | null;
  /** Runs `task` once the answer to the current request has been sent (e.g. a subscription's replay). */
  afterResponse(task: () => void): void;
  /** What the reads of this frame may still answer with (see ReadBudget): one budget per frame, batch or not. */
  readonly readBudget: ReadBudget;
  /** Bytes of the frame (a WebSocket message, an HTTP body) the request came in. */
  readonly frameBytes: number;
}

/**
 * Who made a call, for the log lines of acts an operator must be able to trace back (a token
 * created or revoked): the connection or ingress, and the address it came from.
 */
export function describeCaller({ ingress, connectionId, remoteAddress }: CallContext): string {
  const over = ingress === 'websocket' ? `connection ${connectionId}` : ingress === 'http-rpc' ? 'POST /rpc' : 'POST /hooks/wake';
  return `${over} from ${remoteAddress}`;
}
