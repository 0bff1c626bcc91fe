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
  /** As the gateway sent it: with an `errorName`, the gateway's ErrorData (`name`, `errors` for INVALID_PARAMS, the error's details). */
  readonly data: unknown;

  constructor(code: number, message: string, data: unknown) {
    super(message);
    this.name = 'RpcCallError';
    brand(this, 'RpcCallError');
    this.code = code;
    this.data = data;
    this.errorName = errorNameOf(code);
  }

  /** By brand, not by class identity: see sameErrorClass. */
  static override [Symbol.hasInstance](value: unknown): value is RpcCallError {
    return this === RpcCallError ? sameErrorClass(value, 'RpcCallError') : Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/**
 * `instanceof` for the client's errors goes by a brand each carries, not by the class object: the
 * CLI's bundles (scripts/bundle.ts) each hold a copy of this module, and an error thrown by one
 * (the call over a WebSocket in websocket-call.cjs) is explained by another (cli.cjs); so is one of
 * a program that loads the library twice. By identity, such an error was "unexpected", with a stack
 * trace. Not by name, which another library's error may bear (`ConnectionError` is common): a
 * registered symbol is the same in every copy, and only these classes set it. A caller's subclass
 * goes by identity, as any class does.
 */
const BRAND = Symbol.for('switchboard.client-error');

function brand(error: Error, name: string): void {
  Object.defineProperty(error, BRAND, { value: name });
}

function sameErrorClass(value: unknown, name: string): boolean {
  return value instanceof Error && (value as { [BRAND]?: unknown })[BRAND] === name;
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

/** An HTTP-level refusal: its status, and the gateway's error code and name when its body held them. */
export interface HttpRefusal {
  status: number;
  code: number | undefined;
  /** The name from the gateway's error table, when its code is one of ours (as RpcCallError's errorName). */
  errorName: ErrorName | undefined;
  /** When to try again, from its Retry-After header (seconds, or a date counted from now): 429 RATE_LIMITED sends it. */
  retryAfterSeconds: number | undefined;
}

/** The call has no answer from the gateway, and never will. */
export class ConnectionError extends Error {
  readonly failure: ConnectionFailure;
  readonly url: string;
  /**
   * For a call or an upgrade refused with an HTTP status (413 BODY_TOO_LARGE, 429 RATE_LIMITED,
   * 404 PATH_NOT_FOUND...): what to tell apart without reading the message. Undefined otherwise.
   */
  readonly refusal: HttpRefusal | undefined;
  /**
   * True for a call answered, but not as its method's result (`rejected`: another JSON-RPC
   * service, a gateway of a version this client cannot read): unlike other refusals, what answered
   * may have done it.
   */
  readonly unreadableAnswer: boolean;

  constructor(failure: ConnectionFailure, url: string, message: string, options?: { cause?: unknown; refusal?: HttpRefusal; unreadableAnswer?: boolean }) {
    super(message, options);
    this.name = 'ConnectionError';
    brand(this, 'ConnectionError');
    this.failure = failure;
    this.url = url;
    this.refusal = options?.refusal;
    this.unreadableAnswer = options?.unreadableAnswer ?? false;
  }

  /** By brand, not by class identity: see sameErrorClass. */
  static override [Symbol.hasInstance](value: unknown): value is ConnectionError {
    return this === ConnectionError ? sameErrorClass(value, 'ConnectionError') : Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/**
 * The error for a gateway (or a proxy in front of it) that answered `refused` (the call, the
 * connection) with an HTTP status instead: 401 is the token, any other status is shown with what
 * its body says. The same for POST /rpc and for a WebSocket upgrade, so a refusal reads alike
 * whichever way the client came.
 */
export function refusalError(
  url: string,
  { status, body, retryAfter }: { status: number; body: string; retryAfter: string | undefined },
  refused: 'the call' | 'the connection',
): ConnectionError {
  const error = gatewayErrorOf(body);
  const errorName = error?.code === undefined ? undefined : errorNameOf(error.code);
  const refusal: HttpRefusal = { status, code: error?.code, errorName, retryAfterSeconds: retryAfterSeconds(retryAfter) };
  if (status === 401) return new ConnectionError('unauthorized', url, `the gateway at ${url} refused the token (HTTP 401)`, { refusal });
  if (error === undefined && body.trim() === '') {
    // A gateway's refusals all say why in JSON: a bare status is most likely another server.
    return new ConnectionError('rejected', url, `${url} refused ${refused} (HTTP ${status}, nothing said): is it a switchboard gateway?`, { refusal });
  }
  const said = error === undefined ? shownBody(body) : `${error.message} (${String(error.name)} ${String(error.code)})`;
  if (status < 400) {
    // Not a refusal: a gateway refuses with 4xx or 5xx. A web server answers an upgrade with its page.
    const asked = refused === 'the connection' ? 'the WebSocket upgrade' : 'the call';
    return new ConnectionError('rejected', url, `${url} answered ${asked} with HTTP ${status} (${said}), as no switchboard gateway does: is it one?`, { refusal });
  }
  return new ConnectionError('rejected', url, `the gateway at ${url} refused ${refused} (HTTP ${status}: ${said})`, { refusal });
}

/**
 * A Retry-After value (RFC 9110 section 10.2.3: delay-seconds, or an HTTP date, which names GMT) in
 * seconds from now; undefined for anything else, which Date.parse would read as some year ("1.5").
 */
function retryAfterSeconds(value: string | undefined): number | undefined {
  const text = value?.trim() ?? '';
  if (/^\d+$/.test(text)) return Number(text);
  const at = text.endsWith('GMT') ? Date.parse(text) : Number.NaN;
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * The error for a TLS handshake that failed: what answered does not speak TLS, as a gateway without
 * it at a wss:// or https:// URL (EPROTO, OpenSSL's "wrong version number"), or its certificate was
 * not accepted (self-signed, expired, another host name). Undefined for any other failure.
 * Something answered either way, so it is not 'unreachable', which sends the user looking for a
 * gateway that is not running.
 */
export function tlsError(url: string, error: unknown): ConnectionError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === undefined) return undefined;
  if (code === 'EPROTO' || code.startsWith('ERR_SSL_')) {
    const plain = url.startsWith('https:') ? 'http://' : 'ws://';
    return new ConnectionError('rejected', url, `TLS handshake with ${url} failed (${code}): is the gateway behind TLS? use ${plain} for a gateway without it`, {
      cause: error,
    });
  }
  if (CERTIFICATE_FAILURES.has(code)) {
    return new ConnectionError('rejected', url, `the TLS certificate of ${url} was not accepted (${code}: ${(error as Error).message}): ${certificateFix(code)}`, {
      cause: error,
    });
  }
  return undefined;
}

function certificateFix(code: string): string {
  if (code === 'HOSTNAME_MISMATCH' || code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'connect by a host name the certificate covers';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return "renew the gateway's certificate, or check this machine's clock";
  if (code === 'CERT_REVOKED') return "replace the gateway's certificate";
  return 'if it is your own, give Node.js its CA with NODE_EXTRA_CA_CERTS=<file.pem>';
}

/**
 * Why Node.js refused a peer's certificate: OpenSSL's verify results under the names Node gives
 * them as error codes, and Node's own for a host name the certificate does not cover.
 */
const CERTIFICATE_FAILURES: ReadonlySet<string> = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The gateway's JSON error in a refusal's body; undefined for another body (a proxy's page, say). */
function gatewayErrorOf(text: string): { message: string; code: number | undefined; name: string | undefined } | undefined {
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; data?: { name?: unknown } } };
    if (error && typeof error.message === 'string') {
      return {
        message: error.message,
        code: typeof error.code === 'number' ? error.code : undefined,
        name: typeof error.data?.name === 'string' ? error.data.name : undefined,
      };
    }
  } catch {
    // Not JSON.
  }
  return undefined;
}

/** A body that is not the gateway's error, shown as it is: on one line, cut short (an error page is a page). */
function shownBody(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > MAX_SHOWN_BODY ? `${line.slice(0, MAX_SHOWN_BODY)}…` : line;
}

/** Characters of a refusal that is not a gateway's JSON error shown in the message. */
const MAX_SHOWN_BODY = 200;

/** The errno code (ENOENT, EACCES, ...) of an error or of one of its causes. */
export function errnoCode(error: unknown): string | undefined {
  for (let cause = error; cause instanceof Error; cause = cause.cause) {
    const { code } = cause as NodeJS.ErrnoException;
    if (typeof code === 'string') return code;
  }
  return undefined;
}
