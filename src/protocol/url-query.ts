/**
 * What a URL's query may not carry. Credentials: the gateway refuses such a request
 * (CREDENTIALS_IN_URL) and the client refuses to send one, since URLs land in access logs,
 * proxies' included; and neither shows such a query in an error. A call's parameters: the gateway
 * reads them from the body only, so one in the query would be ignored (PARAMS_IN_URL).
 */
import { TOKEN_PREFIX } from './constants.js';

/** Query parameter names that carry credentials by convention, compared as decoded and lower-cased. */
const CREDENTIAL_NAMES: ReadonlySet<string> = new Set(['token', 'access_token', 'api_key', 'apikey', 'auth', 'key', 'password', 'secret']);

/** A switchboard token (its prefix, then base64url), anywhere in a decoded name or value. */
const TOKEN_SHAPE = new RegExp(`(?:${TOKEN_PREFIX.admin}|${TOKEN_PREFIX.scoped})[A-Za-z0-9_-]{16,}`);

/**
 * Whether the request target's query carries a credential: a parameter of such a name, or a
 * switchboard token in any name or value. Refused so that tokens never land in access logs.
 */
export function credentialInQuery(target: string): boolean {
  return queryParameters(target).some(({ name, value }) => CREDENTIAL_NAMES.has(name.trim().toLowerCase()) || TOKEN_SHAPE.test(name) || TOKEN_SHAPE.test(value));
}

/**
 * The names in the request target's query that spell one of `names` (given as paramNameKey
 * makes them), whole or in one of their parts: `?sessionKey=...`, `?session_key=...`, and the
 * forms that put an object in a query, `?sessionKey[0]=...`, `?params[sessionKey]=...`,
 * `?params.text=...` (security QA); as given, in order.
 */
export function paramsInQuery(target: string, names: ReadonlySet<string>): string[] {
  return queryParameters(target)
    .map(({ name }) => name)
    .filter((name) => [name, ...name.split(/[[\].]/)].some((part) => names.has(paramNameKey(part))));
}

/**
 * A parameter's name as paramsInQuery and the dispatcher compare it: `sessionKey`, `session_key`,
 * `Session-Key` and `ſessionKey` (NFKC folds the long s) alike.
 */
export function paramNameKey(name: string): string {
  return name.normalize('NFKC').replace(/[^\p{L}\p{N}]/gu, '').toLowerCase();
}

/**
 * The query is everything after the first "?", in parts split at "&", ";" and any further "?"
 * (which servers and log tools read apart), each decoded as a form is ("%74oken" is "token", "+" a
 * space); an empty part is none.
 */
function queryParameters(target: string): Array<{ name: string; value: string }> {
  const start = target.indexOf('?');
  if (start === -1) return [];
  return target
    .slice(start + 1)
    .split(/[?&;]/)
    .filter((part) => part !== '')
    .map((part) => {
      const equals = part.indexOf('=');
      return { name: decodeQueryPart(equals === -1 ? part : part.slice(0, equals)), value: equals === -1 ? '' : decodeQueryPart(part.slice(equals + 1)) };
    });
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
