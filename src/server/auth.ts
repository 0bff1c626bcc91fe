import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/**
 * Checks the token of an upgrade or request: `Authorization: Bearer <token>`, or, for clients
 * that cannot set headers but take a URL (ws://any:<token>@host:port, as `ws` and curl turn
 * userinfo into it), `Authorization: Basic` with the token as the password. The comparison is
 * constant-time, so timing reveals nothing of the token.
 */
export function hasValidToken(request: IncomingMessage, token: string): boolean {
  const given = presentedToken(request.headers.authorization);
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function presentedToken(header: string | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = /^(Bearer|Basic)[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!match?.[2]) return undefined;
  if (match[1]!.toLowerCase() === 'bearer') return match[2];
  const decoded = Buffer.from(match[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}
