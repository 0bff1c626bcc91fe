/**
 * Credentials in a URL's query: the gateway refuses such a request (CREDENTIALS_IN_URL) and the
 * client refuses to send one, since URLs land in access logs, proxies' included; and neither
 * shows such a query in an error.
 */
import { TOKEN_PREFIX } from './constants.js';

/** Query parameter names that carry credentials by convention, compared as decoded and lower-cased. */
const CREDENTIAL_NAMES: ReadonlySet<string> = new Set(['token', 'access_token', 'api_key', 'apikey', 'auth', 'key', 'password', 'secret']);

/** A switchboard token (its prefix, then base64url), anywhere in a decoded name or value. */
const TOKEN_SHAPE = new RegExp(`(?:${TOKEN_PREFIX.admin}|${TOKEN_PREFIX.scoped})[A-Za-z0-9_-]{16,}`);

/**
 * Whether the request target's query carries a credential: a parameter of such a name, or a
 * switchboard token in any name or value. Refused so that tokens never land in access logs. The
 * query is everything after the first "?", in parts split at "&", ";" and any further "?" (which
 * servers and log tools read apart), each decoded as a form is ("%74oken" is "token", "+" a space).
 */
export function credentialInQuery(target: string): boolean {
  const start = target.indexOf('?');
  if (start === -1) return false;
  for (const part of target.slice(start + 1).split(/[?&;]/)) {
    const equals = part.indexOf('=');
    const name = decodeQueryPart(equals === -1 ? part : part.slice(0, equals));
    const value = equals === -1 ? '' : decodeQueryPart(part.slice(equals + 1));
    if (CREDENTIAL_NAMES.has(name.trim().toLowerCase()) || TOKEN_SHAPE.test(name) || TOKEN_SHAPE.test(value)) return true;
  }
  return false;
}

function decodeQueryPart(text: string): string {
  const spaced = text.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // A stray "%" is not an escape: the text is read as it is.
    return spaced;
  }
}
