/**
 * The client's socket. Node 20 has no WebSocket global without a flag, and the browser API cannot
 * send an Authorization header, so the client uses `ws`; this file is its only user outside the
 * server, and hides it behind a four-method interface so another transport can follow.
 */
import WebSocket from 'ws';
import { MAX_CLIENT_FRAME_BYTES } from '../protocol/constants.js';
import { ConnectionError } from './errors.js';

export interface Socket {
  send(text: string): void;
  close(code: number, reason: string): void;
  onMessage(listener: (text: string) => void): void;
  onClose(listener: (code: number, reason: string) => void): void;
}

export interface OpenOptions {
  timeoutMs: number;
  signal?: AbortSignal;
}

export function openSocket(url: string, token: string, options: OpenOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, {
        headers: { authorization: `Bearer ${token}` },
        handshakeTimeout: options.timeoutMs,
        maxPayload: MAX_CLIENT_FRAME_BYTES,
        perMessageDeflate: false,
      });
    } catch (error) {
      reject(new ConnectionError('unreachable', url, `invalid gateway URL ${JSON.stringify(url)}: expected ws://host:port`, { cause: error }));
      return;
    }
    const fail = (error: ConnectionError) => {
      options.signal?.removeEventListener('abort', onAbort);
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(error);
    };
    const onAbort = () => fail(new ConnectionError('aborted', url, `connecting to ${url} was aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });

    ws.once('unexpected-response', (_request, response) => {
      const status = response.statusCode ?? 0;
      response.resume();
      if (status === 401) {
        fail(new ConnectionError('unauthorized', url, `the gateway at ${url} refused the token (HTTP 401)`));
      } else {
        fail(new ConnectionError('rejected', url, `the gateway at ${url} refused the connection (HTTP ${status})`));
      }
    });
    ws.once('error', (error: NodeJS.ErrnoException) => {
      const timedOut = /timed out/i.test(error.message);
      fail(
        new ConnectionError(
          timedOut ? 'timeout' : 'unreachable',
          url,
          timedOut ? `no answer from ${url} within ${options.timeoutMs} ms` : `gateway not reachable at ${url} (${error.code ?? error.message})`,
          { cause: error },
        ),
      );
    });
    ws.once('open', () => {
      options.signal?.removeEventListener('abort', onAbort);
      ws.removeAllListeners();
      // After open, errors surface as a close; the listener keeps them from being thrown.
      ws.on('error', () => {});
      resolve({
        send: (text) => ws.send(text),
        close: (code, reason) => ws.close(code, reason),
        onMessage: (listener) => ws.on('message', (data: Buffer) => listener(data.toString())),
        onClose: (listener) => ws.on('close', (code: number, reason: Buffer) => listener(code, reason.toString())),
      });
    });
  });
}
