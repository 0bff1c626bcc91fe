/**
 * What a gateway URL may be, for both ways the client reaches a gateway (POST /rpc and the
 * WebSocket), so that a bad URL is explained alike whichever one was tried.
 */
import { ConnectionError } from './errors.js';

/** The schemes a gateway URL may have, and the one its HTTP calls use. */
export const HTTP_PROTOCOLS: Readonly<Record<string, string>> = { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' };

/**
 * Why `url` cannot be a gateway URL, or undefined when it can: the reason invalidGatewayUrl's
 * error and the CLI's usage error for --url give.
 */
export function gatewayUrlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'expected ws://host:port';
  }
  if (!Object.hasOwn(HTTP_PROTOCOLS, parsed.protocol)) return 'expected ws://host:port (wss://, http:// and https:// work too)';
  // Nothing after "#" is ever sent (the WebSocket client refuses such a URL outright): whatever it
  // was meant to say, no gateway or proxy would hear it.
  if (parsed.hash) return `remove its fragment (${JSON.stringify(parsed.hash)}), which is never sent to a gateway`;
  return undefined;
}

/** The client's error for a URL that cannot be a gateway's, saying why (see gatewayUrlProblem). */
export function invalidGatewayUrl(url: string, problem: string, cause?: unknown): ConnectionError {
  return new ConnectionError('unreachable', url, `invalid gateway URL ${JSON.stringify(url)}: ${problem}`, cause === undefined ? undefined : { cause });
}
