/**
 * One client connection: frames in, dispatch, frames out. Knows nothing of methods. Its state is
 * an explicit machine (OPEN -> CLOSING -> CLOSED) so shutdown can wait for in-flight calls.
 */
import type { WebSocket, RawData } from 'ws';
import type { RpcDispatcher } from '../protocol/jsonrpc.js';

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED';

export interface ConnectionContext {
  readonly connectionId: number;
  readonly remoteAddress: string;
  /** Sends a server-initiated notification; false when the socket is no longer open. */
  notify(method: string, params: unknown): boolean;
}

export class Connection implements ConnectionContext {
  readonly connectionId: number;
  readonly remoteAddress: string;
  #state: ConnectionState = 'OPEN';
  #inFlight = 0;
  #idle: (() => void) | undefined;
  readonly #socket: WebSocket;
  readonly #dispatcher: RpcDispatcher<ConnectionContext>;

  constructor(id: number, socket: WebSocket, remoteAddress: string, dispatcher: RpcDispatcher<ConnectionContext>) {
    this.connectionId = id;
    this.remoteAddress = remoteAddress;
    this.#socket = socket;
    this.#dispatcher = dispatcher;
    socket.on('message', (data) => this.#receive(data));
  }

  get state(): ConnectionState {
    return this.#state;
  }

  notify(method: string, params: unknown): boolean {
    if (this.#state !== 'OPEN') return false;
    this.#socket.send(JSON.stringify({ jsonrpc: '2.0', method, params }));
    return true;
  }

  /** Stops reading requests, lets in-flight calls answer, then closes with the given code. */
  async close(code: number, reason: string): Promise<void> {
    if (this.#state === 'CLOSED') return;
    this.#state = 'CLOSING';
    if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
    this.#socket.close(code, reason);
  }

  markClosed(): void {
    this.#state = 'CLOSED';
    this.#idle?.();
  }

  #receive(data: RawData): void {
    if (this.#state === 'CLOSED') return;
    // Binary frames are read as UTF-8 JSON too: some clients send text as bytes. While CLOSING,
    // requests still get an answer (SHUTTING_DOWN) rather than silence.
    // binaryType is the default 'nodebuffer', so a frame is a Buffer, or Buffer[] when fragmented.
    const text = Array.isArray(data) ? Buffer.concat(data).toString() : (data as Buffer).toString();
    this.#inFlight++;
    this.#dispatcher
      .handleFrame(text, this)
      .then((response) => {
        if (response !== undefined && this.#socket.readyState === this.#socket.OPEN) this.#socket.send(response);
      })
      .finally(() => {
        this.#inFlight--;
        if (this.#inFlight === 0) this.#idle?.();
      });
  }
}
