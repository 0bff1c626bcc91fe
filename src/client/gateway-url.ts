/**
 * What a gateway URL may be, for both ways the client reaches a gateway (POST /rpc and the
 * WebSocket), so that a bad URL is explained alike whichever one was tried.
 */
import { UNIX_SCHEME } from '../protocol/constants.js';
import { socketPathProblem } from '../protocol/socket-path.js';
import { credentialInQuery } from '../protocol/url-query.js';
import { ConnectionError } from './errors.js';

/** The schemes a gateway URL may have, and the one its HTTP calls use. */
export const HTTP_PROTOCOLS: Readonly<Record<string, string>> = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' };

/** The port of a URL with a scheme and a host, as written: what the URL parser refuses past MAX_PORT. */
const PORT = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]*:(\d+)(?:[/?#]|$)/i;
const MAX_PORT = 65535;

/** What a URL without a scheme (`127.0.0.1:18790`) or with another one is told. */
const EXPECTED_URL = `expected ws://host:port (wss://, http://, https:// and ${UNIX_SCHEME}/path/to/gateway.sock work too)`;

/**
 * Why `url` cannot be a gateway URL, or undefined when it can: the reason invalidGatewayUrl's
 * error and the CLI's usage error for --url give.
 */
export function gatewayUrlProblem(url: string): string | undefined {
  const socket = unixSocketPath(url);
  if (socket !== undefined) {
    if (!socket.startsWith('/')) return `expected ${UNIX_SCHEME}/absolute/path/to/gateway.sock`;
    // Connecting would say ENOTDIR, as if no gateway ran there.
    if (socket.endsWith('/')) return 'a socket is a file, not a directory: remove the "/" at its end';
    return socketPathProblem(socket);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    const port = PORT.exec(url)?.[1];
    return port !== undefined && Number(port) > MAX_PORT ? `its port ${port} is past ${MAX_PORT}, the highest there is` : EXPECTED_URL;
  }
  if (!Object.hasOwn(HTTP_PROTOCOLS, parsed.protocol)) return EXPECTED_URL;
  // Nothing after "#" is ever sent (the WebSocket client refuses such a URL outright): whatever it
  // was meant to say, no gateway or proxy would hear it.
  if (parsed.hash) {
    if (fragmentHoldsCredential(url)) return 'remove its fragment, which is never sent to a gateway and holds a credential: the token goes in the Authorization header';
    return `remove its fragment (${JSON.stringify(parsed.hash)}), which is never sent to a gateway`;
  }
  // The WebSocket would send them as Basic credentials, which the Bearer token then overrides:
  // silently unused, and most likely a token put in the wrong place.
  if (parsed.username || parsed.password) return 'remove its user name and password, which are never sent: the token goes in the Authorization header';
  // The gateway would refuse it (CREDENTIALS_IN_URL), once the token had gone out in the clear.
  if (credentialInQuery(url)) return 'remove the credential from its query (URLs end up in logs, and the gateway refuses such a request): the token goes in the Authorization header';
  return undefined;
}

/**
 * The socket path of a gateway URL that names a Unix socket (`unix:/path/gateway.sock`), as given:
 * not percent-decoded, since a file name is not a URL path. Undefined for any other URL.
 */
export function unixSocketPath(url: string): string | undefined {
  return url.slice(0, UNIX_SCHEME.length).toLowerCase() === UNIX_SCHEME ? url.slice(UNIX_SCHEME.length) : undefined;
}

/**
 * Where a call over a Unix socket is addressed: Host must name something (RFC 9112 section 3.2),
 * and the gateway checks a browser's Origin against it.
 */
export const UNIX_SOCKET_HOST = 'localhost';

/** The client's error for a URL that cannot be a gateway's, saying why (see gatewayUrlProblem). */
export function invalidGatewayUrl(url: string, problem: string, cause?: unknown): ConnectionError {
  const shown = shownUrl(url);
  return new ConnectionError('unreachable', shown, `invalid gateway URL ${JSON.stringify(shown)}: ${problem}`, cause === undefined ? undefined : { cause });
}

/** A URL's user name and password, after its scheme: what the WHATWG URL parser takes as such. */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;

/**
 * The URL as an error may show it: a user name and password in it (most likely a token, in either)
 * are masked, and so is a query that carries a credential. On the text, not through URL: one that
 * does not parse (a bad port) shows them too.
 */
export function shownUrl(url: string): string {
  let masked = url.replace(USERINFO, '$1***@');
  if (fragmentHoldsCredential(masked)) masked = `${masked.slice(0, masked.indexOf('#'))}#***`;
  const query = masked.indexOf('?');
  return query !== -1 && credentialInQuery(masked) ? `${masked.slice(0, query)}?***` : masked;
}

/** Whether what follows the URL's "#" reads as a query carrying a credential (`#access_token=...`, as OAuth's implicit flow puts it). */
function fragmentHoldsCredential(url: string): boolean {
  const hash = url.indexOf('#');
  return hash !== -1 && credentialInQuery(`?${url.slice(hash + 1)}`);
}
