/**
 * One client connection: frames in, dispatch, frames out. Knows nothing of methods. Its state is
 * an explicit machine (OPEN -> CLOSING -> CLOSED) so shutdown can wait for in-flight calls.
 */
import type { RawData, WebSocket } from 'ws';
import type { RpcDispatcher } from '../protocol/jsonrpc.js';
import type { Subscriber } from './hub.js';

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED';

/** RFC 6455 close codes the gateway sends. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
} as const;

/**
 * How long a peer that was sent a close frame has to answer before the socket is destroyed: a
 * slow consumer may have megabytes to read first, and must still see why it was cut.
 */
const CLOSE_GRACE_MS = 30_000;

/** What a method handler knows of the connection that called it. */
export interface ConnectionContext {
  readonly connectionId: number;
  readonly remoteAddress: string;
  readonly subscriber: Subscriber;
  /** Runs `task` once the answer to the current request has been sent (e.g. a subscription's replay). */
  afterResponse(task: () => void): void;
}

export interface ConnectionOptions {
  /** Unsent bytes past which a subscriber is cut with 1008 "slow consumer". */
  maxBufferedBytes: number;
}

export class Connection implements Subscriber {
  readonly connectionId: number;
  readonly remoteAddress: string;
  #state: ConnectionState = 'OPEN';
  #inFlight = 0;
  #alive = true;
  #idle: (() => void) | undefined;
  readonly #socket: WebSocket;
  readonly #dispatcher: RpcDispatcher<ConnectionContext>;
  readonly #options: ConnectionOptions;

  constructor(
    id: number,
    socket: WebSocket,
    remoteAddress: string,
    dispatcher: RpcDispatcher<ConnectionContext>,
    options: ConnectionOptions,
  ) {
    this.connectionId = id;
    this.remoteAddress = remoteAddress;
    this.#socket = socket;
    this.#dispatcher = dispatcher;
    this.#options = options;
    socket.on('message', (data) => this.#receive(data));
    socket.on('pong', () => (this.#alive = true));
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  push(frame: string): boolean {
    if (this.#state !== 'OPEN') return false;
    if (this.#socket.bufferedAmount > this.#options.maxBufferedBytes) {
      this.#cut(CloseCode.POLICY_VIOLATION, 'slow consumer');
      return false;
    }
    this.#socket.send(frame);
    return true;
  }

  /**
   * Liveness check, called every PING_INTERVAL_MS: a connection that did not answer the previous
   * ping is dead and is terminated (its subscriptions end with the close event).
   */
  heartbeat(): void {
    if (!this.#alive) {
      this.#socket.terminate();
      return;
    }
    this.#alive = false;
    this.#socket.ping();
  }

  /** Stops taking new work, lets in-flight calls answer, then closes with the given code. */
  async close(code: number, reason: string): Promise<void> {
    if (this.#state === 'CLOSED') return;
    this.#state = 'CLOSING';
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#cut(code, reason);
  }

  markClosed(): void {
    this.#state = 'CLOSED';
    this.#idle?.();
  }

  #cut(code: number, reason: string): void {
    if (this.#state === 'OPEN') this.#state = 'CLOSING';
    this.#socket.close(code, reason);
    setTimeout(() => this.#socket.terminate(), CLOSE_GRACE_MS).unref();
  }

  #receive(data: RawData): void {
    if (this.#state === 'CLOSED') return;
    // binaryType is the default 'nodebuffer', so a frame is one Buffer. Binary frames are read as
    // UTF-8 JSON too: some clients send text as bytes.
    const text = (data as Buffer).toString();
    const tasks: Array<() => void> = [];
    const context: ConnectionContext = {
      connectionId: this.connectionId,
      remoteAddress: this.remoteAddress,
      subscriber: this,
      afterResponse: (task) => tasks.push(task),
    };
    this.#inFlight++;
    this.#dispatcher
      .handleFrame(text, context)
      .then((response) => {
        if (response !== undefined && this.#socket.readyState === this.#socket.OPEN) this.#socket.send(response);
        for (const task of tasks) task();
      })
      .finally(() => {
        this.#inFlight--;
        if (this.#inFlight === 0) this.#idle?.();
      });
  }
}
