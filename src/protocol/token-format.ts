/**
 * What a token may hold: the visible characters of Latin-1. Every token switchboard issues is
 * visible ASCII (a prefix and base64url); a hand-written one may hold "é", which an HTTP header
 * carries as one byte. The gateway reads one token after "Bearer " up to whitespace, and a header
 * cannot carry line breaks, NUL or anything past U+00FF: a token holding such could never be
 * presented whole.
 */
import { codePointName } from './session-key.js';

const VISIBLE_LATIN1 = /^[\x21-\x7e\xa1-\xff]$/;

/**
 * Why `token` cannot be sent ("is empty", "holds a line break", "holds U+0020 at character 8"), or
 * undefined when it can. Trim it first: whitespace around a token is no part of it.
 */
export function tokenProblem(token: string): string | undefined {
  if (token === '') return 'is empty';
  const chars = [...token];
  const at = chars.findIndex((char) => !VISIBLE_LATIN1.test(char));
  if (at === -1) return undefined;
  const char = chars[at]!;
  return char === '\r' || char === '\n' ? 'holds a line break' : `holds ${codePointName(char.codePointAt(0)!)} at character ${at + 1}`;
}
