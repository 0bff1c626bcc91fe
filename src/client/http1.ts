/**
 * One HTTP/1.1 request and its response (RFC 9112) over a socket of its own, closed after it.
 *
 * Why not node:http: the CLI makes one call and exits, and a cold process spends ~4 ms in
 * node:http's client machinery (agent, outgoing message, parser binding, incoming message stream)
 * for that one call: a seventh of the whole run, and the difference between the CLI costing
 * 1.55× and 1.4× a bare `node -e 0`. What one request needs is small: write the request, read a
 * status line and headers, and find where the body ends (Content-Length, chunked, or the close).
 */
import { connect, isIP, type Socket } from 'node:net';
import { onAbort, type Stop } from './abort.js';

/** A response head longer than this is not one a gateway (or a proxy before it) would send. */
export const MAX_RESPONSE_HEAD_BYTES = 64 * 1024;

export interface HttpRequest {
  /** http: or https:; the request goes to its path and query. */
  url: URL;
  /** A Unix socket to send it over, instead of the URL's host and port (which then name the Host only). */
  socketPath?: string;
  method: string;
  /** Lowercase names; Host, Content-Length and Connection are set here. */
  headers: Record<string, string>;
  body: string;
  /** Aborting it destroys the socket and fails the exchange with `aborted`. */
  signal?: Stop;
  /** A response body longer than this fails the exchange with `too-large`. @default no limit */
  maxBodyBytes?: number;
}

export interface HttpResponse {
  status: number;
  /** Lowercase names; repeated fields joined with ", ". */
  headers: Map<string, string>;
  body: Buffer;
}

export type ExchangeFailure =
  /** No connection (refused, no route, TLS handshake failed). */
  | 'unreachable'
  /** The connection ended before the whole response arrived. */
  | 'closed'
  /** What came back is not an HTTP/1.x response. */
  | 'malformed'
  /** The response body is longer than the request's maxBodyBytes. */
  | 'too-large'
  /** The request's signal fired. */
  | 'aborted';

export class ExchangeError extends Error {
  readonly failure: ExchangeFailure;

  constructor(failure: ExchangeFailure, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ExchangeError';
    this.failure = failure;
  }
}

/**
 * Characters a header value may hold (RFC 9110 field-value, one byte each): no CR, LF or NUL, so
 * no header injection, and nothing past U+00FF, which one byte cannot carry.
 */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const STATUS_LINE = /^HTTP\/1\.\d (\d{3})(?:[ \t].*)?$/;
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/;

export async function exchange(request: HttpRequest): Promise<HttpResponse> {
  const { url, signal } = request;
  const head = requestHead(request);
  if (signal?.aborted) throw abortError(signal);
  const socket = request.socketPath === undefined ? await openSocket(url) : connect({ path: request.socketPath });
  if (signal?.aborted) {
    socket.destroy();
    throw abortError(signal);
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    const reader = new ResponseReader(request.maxBodyBytes);
    let connected = false;
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      stopListening();
      outcome();
      // After the outcome, not before: tearing the socket down takes a cold process (the CLI's)
      // ~0.35 ms, which its answer need not wait for, and which exiting spares it altogether.
      setImmediate(() => socket.destroy());
    };
    const stopListening = onAbort(signal, () => settle(() => reject(abortError(signal!))));
    socket.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      connected = true;
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        const response = reader.push(chunk);
        if (response) settle(() => resolve(response));
      } catch (error) {
        settle(() => reject(error));
      }
    });
    socket.once('end', () => {
      try {
        const response = reader.end();
        settle(() => resolve(response));
      } catch (error) {
        settle(() => reject(error));
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const reason = error.code ?? error.message;
      settle(() =>
        reject(
          connected
            ? new ExchangeError('closed', `the connection broke before the response was complete (${reason})`, { cause: error })
            : new ExchangeError('unreachable', reason, { cause: error }),
        ),
      );
    });
    socket.once('close', () => settle(() => reject(closedEarly())));
    socket.setNoDelay(true);
    // write, not end: a server may take the client's half-close for leaving, and drop the
    // answer (node:http servers do, unless told to allow half-open sockets).
    // The head in latin1: a field value's bytes above 0x7f are obs-text (RFC 9110 section 5.5),
    // one byte each, not UTF-8. The body is UTF-8, as its Content-Length counted it.
    socket.write(Buffer.concat([Buffer.from(head, 'latin1'), Buffer.from(request.body, 'utf8')]));
  });
}

function requestHead({ url, method, headers, body }: HttpRequest): string {
  const fields: Record<string, string> = {
    host: url.host,
    ...headers,
    'content-length': String(Buffer.byteLength(body)),
    // One request per socket: the response then ends at the latest when the server closes.
    connection: 'close',
  };
  let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    if (!FIELD_VALUE.test(value)) {
      throw new TypeError(`the ${name} header holds a character HTTP cannot carry (a control character such as CR, LF or NUL, or one past U+00FF)`);
    }
    head += `${name}: ${value}\r\n`;
  }
  return `${head}\r\n`;
}

async function openSocket(url: URL): Promise<Socket> {
  // URL keeps an IPv6 literal's brackets, which a socket address must not have.
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (url.protocol !== 'https:') return connect({ host, port: Number(url.port || 80) });
  // node:tls is loaded only for https: gateways; a local one never needs it.
  const { connect: connectTls } = await import('node:tls');
  // SNI names a host, never an address (RFC 6066 section 3).
  return connectTls({ host, port: Number(url.port || 443), servername: isIP(host) === 0 ? host : undefined, ALPNProtocols: ['http/1.1'] });
}

export function abortError(signal: Stop): ExchangeError {
  return new ExchangeError('aborted', 'the request was aborted', { cause: signal.reason });
}

type ReadState = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'until-close';

/**
 * Reads one response from the bytes as they arrive: interim (1xx) responses are skipped, and the
 * body ends where RFC 9112 section 6.3 says: none for 204 and 304, chunked when that is the last
 * transfer coding, else Content-Length, else the close of the connection.
 */
export class ResponseReader {
  /** Bytes not yet parsed: the head, or chunk framing. Body bytes go to `#body` directly. */
  #pending: Buffer = Buffer.alloc(0);
  #state: ReadState = 'head';
  /** Bytes of head lines read so far, interim responses included. */
  #headBytes = 0;
  #status = 0;
  #headers = new Map<string, string>();
  readonly #body: Buffer[] = [];
  /** Body bytes still to come: of the whole body (length) or of the current chunk. */
  #remaining = 0;
  #bodyBytes = 0;
  readonly #maxBodyBytes: number;

  constructor(maxBodyBytes = Number.POSITIVE_INFINITY) {
    this.#maxBodyBytes = maxBodyBytes;
  }

  /** Takes the next bytes; returns the response once it is complete. */
  push(chunk: Buffer): HttpResponse | undefined {
    this.#pending = this.#pending.length === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    for (;;) {
      switch (this.#state) {
        case 'head': {
          const unread = this.#pending.length;
          const line = this.#line(MAX_RESPONSE_HEAD_BYTES - this.#headBytes, HEAD_TOO_LONG);
          if (line === undefined) return undefined;
          this.#headBytes += unread - this.#pending.length;
          if (this.#headBytes > MAX_RESPONSE_HEAD_BYTES) throw malformed(HEAD_TOO_LONG);
          this.#headLine(line);
          break;
        }
        case 'length':
        case 'chunk-data': {
          const taken = this.#take(this.#remaining);
          this.#remaining -= taken;
          if (this.#remaining > 0) return undefined;
          if (this.#state === 'length') return this.#response();
          this.#state = 'chunk-end';
          break;
        }
        case 'chunk-end': {
          const line = this.#line(2, CHUNK_TOO_LONG);
          if (line === undefined) return undefined;
          if (line !== '') throw malformed(CHUNK_TOO_LONG);
          this.#state = 'chunk-size';
          break;
        }
        case 'chunk-size': {
          const line = this.#line(1024, 'a chunk size line is longer than 1024 bytes');
          if (line === undefined) return undefined;
          const size = CHUNK_SIZE_LINE.exec(line);
          if (!size) throw malformed(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
          this.#remaining = Number.parseInt(size[1]!, 16);
          this.#state = this.#remaining === 0 ? 'trailers' : 'chunk-data';
          break;
        }
        case 'trailers': {
          const line = this.#line(MAX_RESPONSE_HEAD_BYTES, 'a trailer line is too long');
          if (line === undefined) return undefined;
          if (line === '') return this.#response();
          break;
        }
        case 'until-close':
          this.#take(this.#pending.length);
          return undefined;
      }
    }
  }

  /** The connection ended: the response, if the close is where its body ends. */
  end(): HttpResponse {
    if (this.#state === 'until-close') return this.#response();
    throw closedEarly();
  }

  #headLine(line: string): void {
    if (this.#status === 0) {
      const status = STATUS_LINE.exec(line);
      if (!status) throw malformed(`expected an HTTP/1.x status line, got ${JSON.stringify(line.slice(0, 40))}`);
      this.#status = Number(status[1]);
      return;
    }
    if (line !== '') {
      const field = HEADER_LINE.exec(line);
      if (!field) throw malformed(`bad header line ${JSON.stringify(line.slice(0, 40))}`);
      const name = field[1]!.toLowerCase();
      const before = this.#headers.get(name);
      this.#headers.set(name, before === undefined ? field[2]! : `${before}, ${field[2]!}`);
      return;
    }
    if (this.#status >= 100 && this.#status < 200) {
      // An interim response (100 Continue, 103 Early Hints): the final one follows.
      this.#status = 0;
      this.#headers = new Map();
      return;
    }
    this.#state = this.#bodyFraming();
  }

  #bodyFraming(): ReadState {
    if (this.#status === 204 || this.#status === 304) {
      this.#remaining = 0;
      return 'length';
    }
    const codings = this.#headers.get('transfer-encoding');
    if (codings !== undefined) {
      return codings.split(',').at(-1)!.trim().toLowerCase() === 'chunked' ? 'chunk-size' : 'until-close';
    }
    const length = this.#headers.get('content-length');
    if (length === undefined) return 'until-close';
    // Repeated fields arrive joined ("42, 42"); they must all agree (RFC 9112 section 6.3).
    const values = new Set(length.split(',').map((value) => value.trim()));
    const [value] = values;
    if (values.size !== 1 || !/^\d{1,15}$/.test(value!)) throw malformed(`bad Content-Length ${JSON.stringify(length)}`);
    this.#remaining = Number(value);
    this.#count(this.#remaining);
    return 'length';
  }

  /** The next line without its terminator (CRLF, or a bare LF: RFC 9112 section 2.2), if it is all here. */
  #line(limit: number, tooLong: string): string | undefined {
    const end = this.#pending.indexOf(0x0a);
    if (end === -1) {
      if (this.#pending.length > limit) throw malformed(tooLong);
      return undefined;
    }
    const line = this.#pending.toString('latin1', 0, end > 0 && this.#pending[end - 1] === 0x0d ? end - 1 : end);
    this.#pending = this.#pending.subarray(end + 1);
    return line;
  }

  /** Moves up to `count` pending bytes to the body; returns how many it moved. */
  #take(count: number): number {
    const taken = Math.min(count, this.#pending.length);
    // A declared length was counted whole when the head arrived.
    if (this.#state !== 'length') this.#count(taken);
    if (taken > 0) this.#body.push(this.#pending.subarray(0, taken));
    this.#pending = this.#pending.subarray(taken);
    return taken;
  }

  /** Adds `bytes` to the body's length, and fails once it passes the limit. */
  #count(bytes: number): void {
    this.#bodyBytes += bytes;
    if (this.#bodyBytes > this.#maxBodyBytes) {
      throw new ExchangeError('too-large', `the response body is longer than ${this.#maxBodyBytes} bytes`);
    }
  }

  #response(): HttpResponse {
    return { status: this.#status, headers: this.#headers, body: Buffer.concat(this.#body) };
  }
}

const HEAD_TOO_LONG = `its head is longer than ${MAX_RESPONSE_HEAD_BYTES} bytes`;
const CHUNK_TOO_LONG = 'a chunk is longer than its size says';

function closedEarly(): ExchangeError {
  return new ExchangeError('closed', 'the connection closed before the response was complete');
}

function malformed(why: string): ExchangeError {
  return new ExchangeError('malformed', `not an HTTP/1.x response: ${why}`);
}
