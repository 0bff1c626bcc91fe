/**
 * What a token may hold: visible ASCII, as every token switchboard issues does (a prefix and
 * base64url). The gateway reads one token after "Bearer " up to whitespace, and an HTTP header
 * cannot carry line breaks or NUL: a token with anything else could never be presented whole.
 */
import { codePointName } from './session-key.js';

const VISIBLE_ASCII = /^[\x21-\x7e]$/;

/** Why `token` cannot be sent ("a line break", "U+0020 at character 8"), or undefined when it can. */
export function tokenProblem(token: string): string | undefined {
  const chars = [...token];
  const at = chars.findIndex((char) => !VISIBLE_ASCII.test(char));
  if (at === -1) return undefined;
  const char = chars[at]!;
  return char === '\r' || char === '\n' ? 'a line break' : `${codePointName(char.codePointAt(0)!)} at character ${at + 1}`;
}
