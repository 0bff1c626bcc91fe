/**
 * What can go wrong with a call, as types a caller can tell apart: the gateway answered with an
 * error (RpcCallError), or the gateway could not be reached or heard from (ConnectionError).
 */
import { errorNameOf, type ErrorName } from '../protocol/errors.js';

/** The gateway answered the call with a JSON-RPC error. */
export class RpcCallError extends Error {
  readonly code: number;
  /** Symbolic name from the gateway's error table, when the code is one of ours. */
  readonly errorName: ErrorName | undefined;
  readonly data: unknown;

  constructor(code: number, message: string, data: unknown) {
    super(message);
    this.name = 'RpcCallError';
    this.code = code;
    this.data = data;
    this.errorName = errorNameOf(code);
  }
}

export type ConnectionFailure =
  /** Nothing listens at the URL, or the network refused. */
  | 'unreachable'
  /** The gateway refused the token (HTTP 401 on upgrade). */
  | 'unauthorized'
  /** The gateway answered the upgrade with something else than 101 or 401. */
  | 'rejected'
  /** The connection closed (or was closed) before the answer came. */
  | 'closed'
  /** No answer within the timeout. */
  | 'timeout'
  /** The caller's AbortSignal fired. */
  | 'aborted';

/** The call has no answer from the gateway, and never will. */
export class ConnectionError extends Error {
  readonly failure: ConnectionFailure;
  readonly url: string;

  constructor(failure: ConnectionFailure, url: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ConnectionError';
    this.failure = failure;
    this.url = url;
  }
}
