/**
 * An answer read as a caller may rely on it: a result of the method's shape, or a JSON-RPC error.
 * Anything else came from what is not a switchboard gateway (another JSON-RPC service, a proxy)
 * or from a gateway of a version this client cannot read, and is a `rejected` ConnectionError
 * rather than a result typed as what it is not (see src/protocol/answer-shape.ts).
 */
import { shapeProblem } from '../protocol/answer-shape.js';
import { NOTIFICATION_SHAPES, RESULT_SHAPES } from '../protocol/answer-shapes.js';
import { ConnectionError, RpcCallError } from './errors.js';

/** The result of a JSON-RPC response to `method`; throws the gateway's error as an RpcCallError. */
export function resultOf(response: unknown, method: string, url: string): unknown {
  if (typeof response !== 'object' || response === null || Array.isArray(response)) {
    throw unexpectedAnswer(url, `the answer to ${method}`, 'it is not a JSON-RPC response object');
  }
  const { result, error } = response as { result?: unknown; error?: unknown };
  if (error !== undefined) {
    const { code, message, data } = (error ?? {}) as { code?: unknown; message?: unknown; data?: unknown };
    if (!Number.isInteger(code) || typeof message !== 'string') {
      throw unexpectedAnswer(url, `the answer to ${method}`, 'its error is not a JSON-RPC error object (an integer code and a message)');
    }
    throw new RpcCallError(code as number, message, data);
  }
  // A method this client does not know (a caller past the types) is answered as it is.
  const shape = Object.hasOwn(RESULT_SHAPES, method) ? RESULT_SHAPES[method as keyof typeof RESULT_SHAPES] : undefined;
  const problem = !('result' in response) ? 'it holds neither a result nor an error' : shape && shapeProblem(result, shape, 'result');
  if (problem) throw unexpectedAnswer(url, `the answer to ${method}`, problem);
  return result;
}

/** Why a notification the gateway pushed cannot be read as its kind, if it cannot; others are not checked. */
export function notificationProblem(method: string, params: unknown): string | undefined {
  if (!Object.hasOwn(NOTIFICATION_SHAPES, method)) return undefined;
  return shapeProblem(params, NOTIFICATION_SHAPES[method as keyof typeof NOTIFICATION_SHAPES], 'params');
}

export function unexpectedAnswer(url: string, what: string, problem: string): ConnectionError {
  return new ConnectionError('rejected', url, `${what} from ${url} is not a switchboard gateway's (${problem}): is it a switchboard gateway, of a version this client can read?`);
}
