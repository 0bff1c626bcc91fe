/**
 * An answer read as a caller may rely on it: a result of the method's shape, or a JSON-RPC error.
 * Anything else came from what is not a switchboard gateway (another JSON-RPC service, a proxy)
 * or from a gateway of a version this client cannot read, and is a `rejected` ConnectionError
 * rather than a result typed as what it is not (see src/protocol/answer-shape.ts).
 */
import { shapeProblem, type AnswerShape } from '../protocol/answer-shape.js';
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
  const shape = shapeIn(RESULT_SHAPES, method);
  const problem = !('result' in response) ? 'it holds neither a result nor an error' : shape && shapeProblem(result, shape, 'result');
  if (problem) throw unexpectedAnswer(url, `the answer to ${method}`, problem);
  return result;
}

/** Why a notification the gateway pushed cannot be read as its kind, if it cannot; others are not checked. */
export function notificationProblem(method: string, params: unknown): string | undefined {
  const shape = shapeIn(NOTIFICATION_SHAPES, method);
  return shape && shapeProblem(params, shape, 'params');
}

const parsedShapes = new Map<string, AnswerShape>();

/** The shape `table` holds for `name` (parsed once), if it holds one. */
function shapeIn(table: Readonly<Record<string, string>>, name: string): AnswerShape | undefined {
  if (!Object.hasOwn(table, name)) return undefined;
  const key = `${table === RESULT_SHAPES ? 'result' : 'params'} ${name}`;
  let shape = parsedShapes.get(key);
  if (shape === undefined) parsedShapes.set(key, (shape = JSON.parse(table[name]!) as AnswerShape));
  return shape;
}

export function unexpectedAnswer(url: string, what: string, problem: string): ConnectionError {
  return new ConnectionError('rejected', url, `${what} from ${url} cannot be read as a switchboard gateway's (${problem}): another service, or a gateway of a version this client cannot read`, {
    unreadableAnswer: true,
  });
}
