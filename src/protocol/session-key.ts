/**
 * The session-key grammar: which conversation an event belongs to. A key is split once on ":" and
 * walked left to right; every token is checked where it stands, so a bad key is answered with the
 * token, its position (tokens count from 1) and what was expected there. A malformed key is always
 * an error, never quietly routed to a main session: misrouted events are worse than refused ones.
 */
import { AGENT_ID_PATTERN, DEFAULT_AGENT_ID, MAX_AGENT_ID_LENGTH, MAX_SESSION_KEY_LENGTH } from './constants.js';
import { RpcError } from './errors.js';
import type { Route, SessionKind } from './schemas.js';

/** The accepted forms, as shown in error messages and docs. */
export const SESSION_KEY_FORMS: readonly string[] = Object.freeze([
  'main',
  'agent:<agentId>:main',
  'agent:<agentId>[:<channel>[:<account>]]:direct:<peer>',
  'agent:<agentId>:<channel>[:<account>]:group:<id>[:thread:<threadId>|:topic:<topicId>]',
  'agent:<agentId>:<channel>[:<account>]:channel:<id>[:thread:<threadId>|:topic:<topicId>]',
]);

export interface ParsedSessionKey {
  /** The canonical key: keywords, agent id and channel lower-cased; ids as given. */
  sessionKey: string;
  route: Route;
}

export type SessionKeyParse = { ok: true; value: ParsedSessionKey } | { ok: false; reason: string };

const NAME_RE = new RegExp(AGENT_ID_PATTERN);
// \s covers Unicode whitespace (NBSP, U+2028, U+3000, ...); Cc the C0/C1 controls. Lone surrogates
// (Cs) are refused too: they cannot be encoded as UTF-8, so two different keys would be stored as
// the same U+FFFD-mangled string. Format characters (Cf: zero-width spaces and joiners, bidi
// overrides, U+FEFF) are invisible, as are the rest of the default-ignorable code points (Hangul
// fillers, U+034F), which the event text's check refuses as well: two keys that print the same
// would name different sessions. Variation selectors are let through: emoji carry them ("❤️" is
// U+2764 U+FE0F), and keys holding them, which earlier versions took, must stay reachable.
const BAD_ID_CHAR_RE = /(?!\p{Variation_Selector})[\s\p{Cc}\p{Cs}\p{Cf}\p{Default_Ignorable_Code_Point}]/u;
// What no id of a key may hold when an event is published to it, on top of the above: a
// variation selector that varies nothing, so that "U77" and "U77\uFE0F" print the same, and the
// blank Braille pattern (U+2800), which prints as a space (QA). Refused where events are
// published, not where keys are read: earlier versions took such keys, and their sessions must
// stay reachable to be read and acked. (Not every look-alike: ids may hold any script, and a
// Cyrillic "а" prints as a Latin "a".)
const UNPUBLISHABLE_SUSPECT_RE = /[\p{Variation_Selector}\u2800]/u;
const VARIATION_SELECTOR_RE = /^\p{Variation_Selector}$/u;
const INVISIBLE_RE = /^[\s\p{Cc}\p{Cs}\p{Cf}\p{Default_Ignorable_Code_Point}\u2800]$/u;
const EMOJI_RE = /^\p{Emoji}$/u;
const KEYCAP_BASE_RE = /^[#*0-9]$/;
const IDEOGRAPH_RE = /^\p{Ideographic}$/u;
const MONGOLIAN_RE = /^\p{Script=Mongolian}$/u;

/**
 * Whether variation selector `selector` can vary `base`, the character before it (`next` after
 * it), by the kinds of sequence Unicode defines: emoji and text presentation (U+FE0E, U+FE0F)
 * after an emoji, or a keycap's digit, "#" or "*" when U+20E3 follows (1️⃣); ideographic variants
 * (U+E0100 on) after an ideograph; Mongolian's own selectors after Mongolian; the other
 * standardized ones (U+FE00 to U+FE0D: math symbols, CJK compatibility forms) after any visible
 * character past ASCII.
 */
function varies(selector: string, base: string | undefined, next: string | undefined): boolean {
  if (base === undefined || INVISIBLE_RE.test(base)) return false;
  const code = selector.codePointAt(0)!;
  if (code === 0xfe0e || code === 0xfe0f) return KEYCAP_BASE_RE.test(base) ? next === '\u20e3' : base.charCodeAt(0) > 0x7f && EMOJI_RE.test(base);
  if (code >= 0xe0100) return IDEOGRAPH_RE.test(base);
  if (code < 0xfe00) return MONGOLIAN_RE.test(base);
  return base.charCodeAt(0) > 0x7f;
}

/** The first character of `id` no event may be published under (see above), and where (in code points), or null. */
function unpublishableCharacter(id: string): { char: string; at: number } | null {
  if (!UNPUBLISHABLE_SUSPECT_RE.test(id)) return null;
  const chars = [...id];
  for (let i = 0; i < chars.length; i++) {
    const char = chars[i]!;
    if (char === '\u2800' || (VARIATION_SELECTOR_RE.test(char) && !varies(char, chars[i - 1], chars[i + 1]))) return { char, at: i + 1 };
  }
  return null;
}
const LEADING_SPACE_RE = /^[\s\p{Cc}]/u;
const TRAILING_SPACE_RE = /[\s\p{Cc}]$/u;

/** Tokens in messages are cut here so one reason stays one readable line. */
const MAX_SHOWN_TOKEN = 40;
const FORMS_TEXT = SESSION_KEY_FORMS.join(', ');

type IdField = 'peer' | 'account' | 'group id' | 'channel id' | 'thread id' | 'topic id';

/**
 * Why no event may be published to a parsed key, or null: "peer "U77\uFE0F" contains a variation
 * selector that varies no character before it (U+FE0F) at character 4". The whole key is looked
 * at first: the common key, with neither character anywhere, costs one regex test.
 */
export function unpublishableKeyReason({ sessionKey, route }: ParsedSessionKey): string | null {
  if (!UNPUBLISHABLE_SUSPECT_RE.test(sessionKey)) return null;
  const ids: Array<[IdField, string | null]> = [
    ['account', route.account],
    ['peer', route.peer],
    [route.kind === 'group' ? 'group id' : 'channel id', route.id],
    ['thread id', route.thread],
    ['topic id', route.topic],
  ];
  for (const [field, id] of ids) {
    const bad = id === null ? null : unpublishableCharacter(id);
    if (bad) {
      const what = bad.char === '\u2800' ? 'the blank Braille pattern, which prints as a space' : 'a variation selector that varies no character before it';
      return `${field} ${show(id!)} contains ${what} (${codePointName(bad.char.codePointAt(0)!)}) at character ${bad.at}`;
    }
  }
  return null;
}

/**
 * The INVALID_PARAMS error for publishing to a key that parses but may not be published to (see
 * unpublishableKeyReason): the key is valid, for reads, so no list of forms.
 */
export function unpublishableKeyError(input: string, reason: string): RpcError {
  const message = `no event is published to session key ${show(input, 80)}: ${reason}, so it prints like another key; leave the character out`;
  return RpcError.invalidParams([{ path: '/sessionKey', message }]);
}

/** Canonical main session of an agent; `agentId` must already be valid. */
export function mainSessionKey(agentId: string): ParsedSessionKey {
  const id = agentId.toLowerCase();
  return { sessionKey: `agent:${id}:main`, route: route(id, 'main', null, null, null, null, null, null) };
}

export function isValidAgentId(agentId: string): boolean {
  return typeof agentId === 'string' && agentId.length <= MAX_AGENT_ID_LENGTH && NAME_RE.test(agentId);
}

/** The INVALID_PARAMS error for a bad `sessionKey` param, naming the problem and the accepted forms. */
export function sessionKeyError(input: string, reason: string, path = '/sessionKey'): RpcError {
  const message = `session key ${show(String(input), 80)} is invalid: ${reason}. Accepted forms: ${FORMS_TEXT}`;
  return RpcError.invalidParams([{ path, message }], { acceptedForms: SESSION_KEY_FORMS });
}

export function parseSessionKey(input: string): SessionKeyParse {
  // Callers past a validator always pass strings; this keeps the "never throws" promise for the rest.
  if (typeof input !== 'string') return fail(`session key must be a string, got ${input === null ? 'null' : typeof input}`);
  if (input.length === 0) return fail('session key is empty');
  const length = codePointLength(input);
  if (length > MAX_SESSION_KEY_LENGTH) {
    return fail(`session key is ${length} characters long; at most ${MAX_SESSION_KEY_LENGTH} are allowed`);
  }
  // Not trimmed: a key that arrives padded usually means a bug upstream the caller should hear about.
  if (LEADING_SPACE_RE.test(input)) return fail('session key starts with whitespace or a control character; remove it');
  if (TRAILING_SPACE_RE.test(input)) return fail('session key ends with whitespace or a control character; remove it');
  if (isWord(input, 'main')) return ok(mainSessionKey(DEFAULT_AGENT_ID));

  const t = input.split(':');
  const n = t.length;
  if (!isWord(t[0], 'agent')) {
    return fail(`session key must start with "agent:" or be exactly "main", but token 1 is ${show(t[0]!)}`);
  }
  if (n < 2) return fail('agent id (token 2) is missing after "agent"');
  const nameProblem = checkName(t[1]!, 'agent id', 2);
  if (nameProblem) return fail(nameProblem);
  const agentId = t[1]!.toLowerCase();
  if (n < 3) return fail('token 3 is missing: expected "main", "direct" or a channel name after the agent id');

  const third = t[2]!.toLowerCase();
  if (third === 'main') {
    if (n === 3) return ok(mainSessionKey(agentId));
    // "main" may still be a channel name, as long as a kind keyword follows where one must.
    if (!isKind(t[3]) && !isKind(t[4])) {
      return fail(`token 4 ${show(t[3]!)} is unexpected: a main session key ends with "main" (agent:<agentId>:main)`);
    }
  }
  if (third === 'group' || third === 'channel') {
    return fail(
      `token 3 is "${third}", but a ${third} key needs a channel name before it (agent:<agentId>:<channel>[:<account>]:${third}:<id>); "direct", "group" and "channel" cannot be channel names`,
    );
  }

  let channel: string | null = null;
  let account: string | null = null;
  let kindAt = 2;
  if (third !== 'direct') {
    const channelProblem = checkName(t[2]!, 'channel name', 3);
    if (channelProblem) return fail(channelProblem);
    channel = third;
    if (n < 4) {
      return fail(`token 4 is missing: expected "direct", "group", "channel" or an account after channel "${channel}"`);
    }
    kindAt = 3;
    if (!isKind(t[3])) {
      const accountProblem = checkId(t[3]!, 'account', 4);
      if (accountProblem) return fail(accountProblem);
      account = t[3]!;
      if (n < 5) return fail(`token 5 is missing: expected "direct", "group" or "channel" after account ${show(account)}`);
      if (!isKind(t[4])) {
        return fail(`token 5 ${show(t[4]!)} must be "direct", "group" or "channel" after account ${show(account)}`);
      }
      kindAt = 4;
    }
  }

  const kind = t[kindAt]!.toLowerCase() as Exclude<SessionKind, 'main'>;
  const idAt = kindAt + 1;
  const idField: IdField = kind === 'direct' ? 'peer' : kind === 'group' ? 'group id' : 'channel id';
  if (idAt >= n) return fail(`${idField} (token ${idAt + 1}) is missing after "${kind}"`);
  const idProblem = checkId(t[idAt]!, idField, idAt + 1);
  if (idProblem) return fail(idProblem);
  const id = t[idAt]!;
  let key = `agent:${agentId}${channel === null ? '' : `:${channel}`}${account === null ? '' : `:${account}`}:${kind}:${id}`;

  let i = idAt + 1;
  if (kind === 'direct') {
    if (i === n) return ok({ sessionKey: key, route: route(agentId, kind, channel, account, id, null, null, null) });
    const next = t[i]!.toLowerCase();
    if (next === 'thread' || next === 'topic') {
      return fail(
        `token ${i + 1} "${next}" is not allowed: a direct key ends with its peer; threads and topics belong to group and channel keys`,
      );
    }
    return fail(unexpectedAfterId(t, i, kindAt, 'a direct key ends with its peer'));
  }

  let thread: string | null = null;
  let topic: string | null = null;
  if (i < n) {
    const suffix = t[i]!.toLowerCase();
    if (suffix !== 'thread' && suffix !== 'topic') {
      return fail(
        unexpectedAfterId(t, i, kindAt, `a ${kind} key may only continue with ":thread:<threadId>" or ":topic:<topicId>"`),
      );
    }
    const field: IdField = suffix === 'thread' ? 'thread id' : 'topic id';
    if (i + 1 >= n) return fail(`${field} (token ${i + 2}) is missing after "${suffix}"`);
    const suffixProblem = checkId(t[i + 1]!, field, i + 2);
    if (suffixProblem) return fail(suffixProblem);
    if (suffix === 'thread') thread = t[i + 1]!;
    else topic = t[i + 1]!;
    key += `:${suffix}:${t[i + 1]!}`;
    i += 2;
    if (i < n) {
      const extra = t[i]!.toLowerCase();
      if (extra === 'thread' || extra === 'topic') {
        return fail(
          extra === suffix
            ? `token ${i + 1} "${extra}" repeats the ${suffix}: a key has at most one :${suffix}:<${suffix}Id>`
            : `token ${i + 1} "${extra}" cannot follow a ${suffix}: use :thread:<threadId> or :topic:<topicId>, not both`,
        );
      }
      return fail(`token ${i + 1} ${show(t[i]!)} is unexpected: the key ends after the ${field}`);
    }
  }
  return ok({ sessionKey: key, route: route(agentId, kind, channel, account, null, id, thread, topic) });
}

// ---------------------------------------------------------------- helpers

function route(
  agentId: string,
  kind: SessionKind,
  channel: string | null,
  account: string | null,
  peer: string | null,
  id: string | null,
  thread: string | null,
  topic: string | null,
): Route {
  return { agentId, kind, channel, account, peer, id, thread, topic };
}

function ok(value: ParsedSessionKey): SessionKeyParse {
  return { ok: true, value };
}

function fail(reason: string): SessionKeyParse {
  return { ok: false, reason };
}

/** Case-insensitive keyword match; the length check keeps multi-unit lower-casings out. */
function isWord(token: string | undefined, word: string): boolean {
  return token !== undefined && token.length === word.length && token.toLowerCase() === word;
}

function isKind(token: string | undefined): boolean {
  return isWord(token, 'direct') || isWord(token, 'group') || isWord(token, 'channel');
}

/**
 * Trailing tokens after a complete key. When the id itself is a kind keyword, the writer most
 * likely meant the keyword before it as a channel name or account, which the grammar cannot allow.
 */
function unexpectedAfterId(t: string[], at: number, kindAt: number, rule: string): string {
  const base = `token ${at + 1} ${show(t[at]!)} is unexpected: ${rule}`;
  if (kindAt < 4 && isKind(t[kindAt + 1])) {
    const role = kindAt === 2 ? 'a channel name' : 'an account';
    return `${base}; ${show(t[kindAt]!)} (token ${kindAt + 1}) cannot be ${role} because "direct", "group" and "channel" are keywords`;
  }
  return base;
}

/** Agent ids and channel names: case-insensitive slugs. */
function checkName(token: string, field: 'agent id' | 'channel name', pos: number): string | null {
  if (token.length === 0) return `${field} (token ${pos}) is empty`;
  if (token.length > MAX_AGENT_ID_LENGTH) {
    return `${field} (token ${pos}) is ${token.length} characters long; at most ${MAX_AGENT_ID_LENGTH} are allowed`;
  }
  if (!NAME_RE.test(token)) {
    // The character is named, as in ids: a name holding an invisible one ("ma\u200bin") prints
    // like a valid name, and "is not valid" alone would leave the writer looking for nothing.
    const bad = badCharacter(token, field, pos) ?? lookalike(token, field, pos);
    return bad ? `${bad}; ${NAME_EXPECTED}` : `${field} ${show(token)} (token ${pos}) is not valid: ${NAME_EXPECTED}`;
  }
  return null;
}

const NAME_EXPECTED = 'expected a-z, 0-9, "_" or "-" in any case, starting with a letter or digit';

/** Peers, accounts and group/channel/thread/topic ids: any text without ":", whitespace or controls. */
function checkId(token: string, field: IdField, pos: number): string | null {
  if (token.length === 0) return `${field} (token ${pos}) is empty`;
  const bad = badCharacter(token, field, pos);
  return bad === null ? null : `${bad}; ids cannot hold whitespace, control or invisible characters, or ":"`;
}

/**
 * The first character of `token` that no token of a key may hold: see badCharacterOf. Null when
 * there is none.
 */
function badCharacter(token: string, field: IdField | 'agent id' | 'channel name', pos: number): string | null {
  const bad = badCharacterOf(token);
  return bad === null ? null : `${field} ${show(token)} (token ${pos}) ${bad}`;
}

/**
 * A name's first character past ASCII, named: some print like a letter of the name (U+212A KELVIN
 * SIGN as "K", Cyrillic "а" as "a"), and "is not valid" alone would leave the writer looking at a
 * name that reads right.
 */
function lookalike(token: string, field: 'agent id' | 'channel name', pos: number): string | null {
  const found = /[^\0-\x7f]/u.exec(token);
  if (!found) return null;
  return `${field} ${show(token)} (token ${pos}) contains ${codePointName(found[0].codePointAt(0)!)}, not an ASCII letter or digit, at character ${found.index + 1}`;
}

/**
 * The first character of `text` that no token of a key (nor an agent id anywhere) may hold,
 * described with where it is: "contains an invisible format character (U+200B) at character 3".
 * Whitespace, a control character, a lone surrogate, an invisible character: named, as the
 * text may print as if it were valid. Null when there is none.
 */
export function badCharacterOf(text: string): string | null {
  const bad = BAD_ID_CHAR_RE.exec(text);
  if (!bad) return null;
  // Counted in characters (code points), as a key's length is: an emoji before it counts once.
  return `contains ${badCharKind(bad[0])} (${codePointName(bad[0].codePointAt(0)!)}) at character ${[...text.slice(0, bad.index)].length + 1}`;
}

function badCharKind(char: string): string {
  if (/\s/u.test(char)) return 'whitespace';
  if (/\p{Cs}/u.test(char)) return 'a lone surrogate';
  if (/\p{Cf}/u.test(char)) return 'an invisible format character';
  if (/\p{Cc}/u.test(char)) return 'a control character';
  return 'an invisible character';
}

export function codePointName(code: number): string {
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
}

/** JSON-quoted so control characters show as escapes; long tokens are cut. */
function show(token: string, max = MAX_SHOWN_TOKEN): string {
  return JSON.stringify(token.length > max ? `${token.slice(0, max)}…` : token);
}

/** Counts code points, as the wire schema's maxLength does, so the two limits never disagree. */
function codePointLength(s: string): number {
  if (s.length <= MAX_SESSION_KEY_LENGTH) return s.length;
  let count = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}
