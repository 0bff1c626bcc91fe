/**
 * The typed client shared by the CLI, agents and IDE plugins. One socket, calls correlated by
 * id, a timeout and an AbortSignal per call; on close every pending call is rejected with a
 * ConnectionError, never left hanging.
 */
import { DEFAULT_CALL_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_PORT } from '../protocol/constants.js';
import type { MethodName, ParamsOf, ResultOf } from '../protocol/methods.js';
import { ConnectionError, RpcCallError } from './errors.js';
import { openSocket, type Socket } from './transport.js';

export const DEFAULT_URL = `ws://${DEFAULT_HOST}:${DEFAULT_PORT}`;

export interface ConnectOptions {
  /** @default DEFAULT_URL (ws://127.0.0.1:18790) */
  url?: string;
  /** The gateway's token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Default timeout of each call, and of connecting, in ms. @default DEFAULT_CALL_TIMEOUT_MS (10 s) */
  timeoutMs?: number;
  /** Aborts connecting. */
  signal?: AbortSignal;
}

export interface CallOptions {
  /** Overrides the client's default timeout for this call. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type NotificationListener = (method: string, params: unknown) => void;

interface Pending {
  resolve(result: unknown): void;
  reject(error: Error): void;
}

export async function connect(options: ConnectOptions): Promise<SwitchboardClient> {
  const url = options.url ?? DEFAULT_URL;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  const socket = await openSocket(url, options.token, { timeoutMs, ...(options.signal ? { signal: options.signal } : {}) });
  return new SwitchboardClient(socket, url, timeoutMs);
}

export class SwitchboardClient {
  readonly url: string;
  readonly #socket: Socket;
  readonly #timeoutMs: number;
  readonly #pending = new Map<number, Pending>();
  readonly #listeners = new Set<NotificationListener>();
  #nextId = 1;
  #closedError: ConnectionError | undefined;
  readonly #closed: Promise<void>;

  constructor(socket: Socket, url: string, timeoutMs: number) {
    this.url = url;
    this.#socket = socket;
    this.#timeoutMs = timeoutMs;
    socket.onMessage((text) => this.#receive(text));
    this.#closed = new Promise((resolve) => {
      socket.onClose((code, reason) => {
        this.#closedError = new ConnectionError(
          'closed',
          url,
          `connection to ${url} closed (${code}${reason ? `: ${reason}` : ''}) before the gateway answered`,
        );
        for (const pending of this.#pending.values()) pending.reject(this.#closedError);
        this.#pending.clear();
        resolve();
      });
    });
  }

  /** Resolves once the connection is closed, by either side. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  /** Calls any method by name, typed by the method registry. */
  call<M extends MethodName>(method: M, params: ParamsOf<M>, options: CallOptions = {}): Promise<ResultOf<M>> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(this.#aborted(method));
    const id = this.#nextId++;
    const timeoutMs = options.timeoutMs ?? this.#timeoutMs;
    return new Promise<ResultOf<M>>((resolve, reject) => {
      const settle = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pending.delete(id);
      };
      const onAbort = () => {
        settle();
        reject(this.#aborted(method));
      };
      const timer = setTimeout(() => {
        settle();
        reject(new ConnectionError('timeout', this.url, `no answer to ${method} from ${this.url} within ${timeoutMs} ms`));
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pending.set(id, {
        resolve: (result) => {
          settle();
          resolve(result as ResultOf<M>);
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      });
      this.#socket.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  systemEvent(params: ParamsOf<'system.event'>, options?: CallOptions): Promise<ResultOf<'system.event'>> {
    return this.call('system.event', params, options);
  }

  peek(params: ParamsOf<'session.peek'>, options?: CallOptions): Promise<ResultOf<'session.peek'>> {
    return this.call('session.peek', params, options);
  }

  drain(params: ParamsOf<'session.drain'>, options?: CallOptions): Promise<ResultOf<'session.drain'>> {
    return this.call('session.drain', params, options);
  }

  listSessions(params: ParamsOf<'session.list'> = {}, options?: CallOptions): Promise<ResultOf<'session.list'>> {
    return this.call('session.list', params, options);
  }

  status(options?: CallOptions): Promise<ResultOf<'gateway.status'>> {
    return this.call('gateway.status', {}, options);
  }

  discover(options?: CallOptions): Promise<ResultOf<'rpc.discover'>> {
    return this.call('rpc.discover', {}, options);
  }

  /** Listens to notifications the gateway pushes; returns a function that stops listening. */
  onNotification(listener: NotificationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Closes the connection (1000); pending calls are rejected. */
  close(): Promise<void> {
    this.#socket.close(1000, 'client closing');
    return this.#closed;
  }

  #aborted(method: string): ConnectionError {
    return new ConnectionError('aborted', this.url, `${method} was aborted by the caller`);
  }

  #receive(text: string): void {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    for (const item of Array.isArray(message) ? message : [message]) this.#dispatch(item);
  }

  #dispatch(item: unknown): void {
    if (typeof item !== 'object' || item === null) return;
    const message = item as { id?: unknown; method?: unknown; params?: unknown; result?: unknown; error?: unknown };
    if (typeof message.method === 'string') {
      for (const listener of this.#listeners) listener(message.method, message.params);
      return;
    }
    const pending = typeof message.id === 'number' ? this.#pending.get(message.id) : undefined;
    if (!pending) return;
    if (message.error && typeof message.error === 'object') {
      const error = message.error as { code?: unknown; message?: unknown; data?: unknown };
      pending.reject(new RpcCallError(Number(error.code), String(error.message ?? 'error'), error.data));
    } else {
      pending.resolve(message.result);
    }
  }
}
