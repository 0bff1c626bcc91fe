/**
 * The client's socket. Node 20 has no WebSocket global without a flag, and the browser API cannot
 * send an Authorization header, so the client uses `ws`; this file is its only user outside the
 * server, and hides it behind a four-method interface so another transport can follow.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { connect } from 'node:net';
import WebSocket from 'ws';
import { MAX_CLIENT_FRAME_BYTES } from '../protocol/constants.js';
import { onAbort, wait } from './abort.js';
import { retryWhileBusy } from './busy-socket.js';
import { ConnectionError, refusalError, tlsError } from './errors.js';
import { gatewayUrlProblem, invalidGatewayUrl, UNIX_SOCKET_HOST, unixSocketPath } from './gateway-url.js';
import { unixSocketRefusal } from './local-gateway.js';
import { SILENCE_CHECKS_PER_TIMEOUT } from './options.js';

export interface Socket {
  send(text: string): void;
  close(code: number, reason: string): void;
  onMessage(listener: (text: string) => void): void;
  onClose(listener: (code: number, reason: string) => void): void;
}

export interface OpenOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** Silence from the gateway after which the open socket is closed as lost (see DEFAULT_HEARTBEAT_TIMEOUT_MS); 0: never. */
  heartbeatTimeoutMs: number;
}

/**
 * How long a closed socket waits for the gateway's close frame before it is destroyed. ws waits
 * 30 s (its closeTimeout option is missing from its types), and its timer keeps the process
 * alive: a program that closed its client while the gateway hung (stopped, or a half-dead link)
 * lived half a minute on. A gateway that answers at all answers a close within milliseconds.
 */
const CLOSE_TIMEOUT_MS = 1000;

/** Opens the WebSocket, connecting again while a busy gateway's socket refuses (see busy-socket.ts), within `timeoutMs` in all. */
export function openSocket(url: string, token: string, options: OpenOptions): Promise<Socket> {
  const deadline = performance.now() + options.timeoutMs;
  return retryWhileBusy(() => openSocketOnce(url, token, { ...options, timeoutMs: Math.max(1, Math.ceil(deadline - performance.now())) }), {
    notConnected: (error) => error instanceof ConnectionError && error.failure === 'unreachable',
    pause: async (ms, busy) => {
      if (performance.now() + ms >= deadline) throw busy;
      if (!(await wait(ms, options.signal))) throw aborted(url, options.signal!);
    },
  });
}

function openSocketOnce(url: string, token: string, options: OpenOptions): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const problem = gatewayUrlProblem(url);
    if (problem !== undefined) {
      reject(invalidGatewayUrl(url, problem));
      return;
    }
    // Before every connection, reconnects included: the socket may have been replaced meanwhile.
    const refusal = unixSocketRefusal(url);
    if (refusal !== undefined) return reject(refusal);
    // An AbortSignal fires 'abort' once: one aborted before connect() would never be heard.
    if (options.signal?.aborted) return reject(aborted(url, options.signal));
    let ws: WebSocket;
    const socketPath = unixSocketPath(url);
    try {
      // ws's own form, ws+unix:/path:/, cannot name a path that holds a colon.
      ws = new WebSocket(socketPath === undefined ? url : `ws://${UNIX_SOCKET_HOST}/`, {
        ...(socketPath === undefined ? {} : { createConnection: () => connect({ path: socketPath }) }),
        headers: { authorization: `Bearer ${token}` },
        handshakeTimeout: options.timeoutMs,
        maxPayload: MAX_CLIENT_FRAME_BYTES,
        perMessageDeflate: false,
      });
    } catch (error) {
      reject(invalidGatewayUrl(url, 'expected ws://host:port', error));
      return;
    }
    // Once: the caller's signal can still fire while a refusal's body is read, and the first
    // outcome is the one reported.
    let failed = false;
    const fail = (error: ConnectionError) => {
      if (failed) return;
      failed = true;
      stopListening();
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(error);
    };
    const stopListening = onAbort(options.signal, () => fail(aborted(url, options.signal!)));

    ws.once('unexpected-response', (_request, response) => {
      // The gateway answered: whatever happens to the rest of its answer (a handshake timeout
      // that cuts the body short), the outcome is this refusal, with what its body says.
      ws.removeAllListeners('error');
      ws.on('error', () => {});
      void refusalBody(response).then((body) =>
        fail(refusalError(url, { status: response.statusCode ?? 0, body, retryAfter: response.headers['retry-after'] }, 'the connection')),
      );
    });
    ws.once('error', (error: NodeJS.ErrnoException) => {
      const timedOut = /timed out/i.test(error.message);
      // Node's HTTP parser failed (HPE_*): something answered, but not in HTTP, as callOverHttp says.
      const notHttp = error.code?.startsWith('HPE_') === true;
      fail(
        tlsError(url, error) ??
          (notHttp
            ? new ConnectionError('rejected', url, `the answer from ${url} is not HTTP (${error.code}): is it a switchboard gateway?`, { cause: error })
            : new ConnectionError(
                timedOut ? 'timeout' : 'unreachable',
                url,
                timedOut ? `no answer from ${url} within ${options.timeoutMs} ms` : `gateway not reachable at ${url} (${error.code ?? error.message})`,
                { cause: error },
              )),
      );
    });
    // The connection under the WebSocket: bytes of a large frame arriving slowly are news too.
    let stream: Duplex | undefined;
    ws.once('upgrade', (response: IncomingMessage) => (stream = response.socket));
    ws.once('open', () => {
      stopListening();
      ws.removeAllListeners();
      // After open, errors surface as a close; the listener keeps them from being thrown.
      ws.on('error', () => {});
      const silence = watchSilence(ws, stream, options.heartbeatTimeoutMs);
      resolve({
        send: (text) => ws.send(text),
        close: (code, reason) => {
          if (ws.readyState === WebSocket.CLOSED) return;
          ws.close(code, reason);
          // Destroying the socket ends ws's own wait too.
          const cut = setTimeout(() => ws.terminate(), CLOSE_TIMEOUT_MS).unref();
          ws.once('close', () => clearTimeout(cut));
        },
        onMessage: (listener) => ws.on('message', (data: Buffer) => listener(data.toString())),
        onClose: (listener) => ws.on('close', (code: number, reason: Buffer) => listener(code, silence.reason ?? reason.toString())),
      });
    });
  });
}

/** Its cause is the signal's reason, as a call's is. */
function aborted(url: string, signal: AbortSignal): ConnectionError {
  return new ConnectionError('aborted', url, `connecting to ${url} was aborted`, { cause: signal.reason });
}

/**
 * Closes the socket (as lost: 1006, no close frame) once the gateway has sent nothing, not even a
 * ping, for `timeoutMs`; `reason` then says so. Any bytes count, not only whole frames: a large
 * frame on a slow link takes long, and the gateway's pings wait behind it. Checked
 * SILENCE_CHECKS_PER_TIMEOUT times per timeout (an ack's default wait counts on how soon silence is
 * found: see silenceFoundWithinMs) by an unref'd timer, so a quiet connection costs no timer per
 * frame and keeps no process alive; and checked again once what waits to be read has been
 * (setImmediate runs after the loop's poll): a process that was busy (a callback that blocked) has
 * pings waiting, not silence.
 */
function watchSilence(ws: WebSocket, stream: Duplex | undefined, timeoutMs: number): { reason: string | undefined } {
  const state: { reason: string | undefined } = { reason: undefined };
  if (timeoutMs === 0) return state;
  let heard = Date.now();
  const hear = () => (heard = Date.now());
  stream?.on('data', hear);
  ws.on('message', hear);
  ws.on('ping', hear);
  const silent = () => Date.now() - heard > timeoutMs;
  const check = setInterval(() => {
    if (!silent()) return;
    setImmediate(() => {
      if (!silent() || ws.readyState === ws.CLOSED) return;
      state.reason = `nothing from the gateway for ${timeoutMs} ms, not even a ping: the connection was taken as lost`;
      ws.terminate();
    });
  }, Math.max(1, Math.floor(timeoutMs / SILENCE_CHECKS_PER_TIMEOUT))).unref();
  ws.once('close', () => {
    clearInterval(check);
    stream?.off('data', hear);
  });
  return state;
}

/**
 * Bytes of a refused upgrade's body read for its message: the gateway's JSON error is a few
 * hundred bytes, and of anything else (a proxy's error page) only the start is shown.
 */
const MAX_REFUSAL_BODY_BYTES = 64 * 1024;

/** The body of a refused upgrade, up to MAX_REFUSAL_BODY_BYTES, or what came of it before the connection ended. */
function refusalBody(response: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = () => {
      response.destroy();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    response.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_REFUSAL_BODY_BYTES) done();
    });
    response.once('end', done);
    // Cut short (reset, or the handshake timeout aborted it): what came is what is shown.
    response.once('error', done);
    response.once('close', done);
  });
}
