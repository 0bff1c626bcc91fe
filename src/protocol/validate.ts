/**
 * Compiled validators for wire shapes. Compile once at start-up; a failed check becomes one
 * INVALID_PARAMS error listing each problem with its JSON pointer path.
 */
import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { AGENT_ID_PATTERN, NOT_BLANK_PATTERN } from './constants.js';
import { paramPath, RpcError, type ParamProblem } from './errors.js';
import { badCharacterOf, codePointName, parseSessionKey, sessionKeyError } from './session-key.js';

/** Enough problems to fix a request in one go, few enough to keep an error response small. */
export const MAX_REPORTED_PROBLEMS = 8;

const NO_PROBLEMS: readonly ParamProblem[] = [];

/** A lone UTF-16 surrogate: UTF-8 cannot hold it, so SQLite would store something else. */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * The string params the store would not keep as sent: JSON's \uD800 escapes can spell a lone
 * surrogate, which a schema lets through as a string like any other. No param of any method takes
 * one, so every method's are checked here, each named. `sessionKey` is left to its grammar, which
 * names the character with the accepted forms; a param with a pattern (an agent id) is named once,
 * by the pattern. Only top-level strings are looked at: the only nested ones, `after`'s keys, are
 * session keys.
 */
function loneSurrogateProblems(params: unknown, reported?: ReadonlySet<string>): readonly ParamProblem[] {
  if (typeof params !== 'object' || params === null) return NO_PROBLEMS;
  let problems: ParamProblem[] | undefined;
  // for-in, not Object.entries, and the list made only when needed: this runs on every call.
  for (const name in params) {
    const value: unknown = (params as Record<string, unknown>)[name];
    if (typeof value !== 'string' || name === 'sessionKey' || !Object.hasOwn(params, name) || !LONE_SURROGATE.test(value)) continue;
    const path = paramPath(name);
    if (reported?.has(path) !== true) (problems ??= []).push({ path, message: 'holds a lone UTF-16 surrogate, which cannot be stored as UTF-8; send well-formed Unicode' });
  }
  return problems ?? NO_PROBLEMS;
}

/**
 * A text that shows nothing: whitespace, controls and default-ignorable characters (zero-width
 * spaces and joiners, U+FEFF, soft hyphens, variation selectors, Hangul fillers), which trim()
 * leaves, the interlinear annotation marks, the hieroglyph format controls (joiners, shown by the
 * signs they join) and the blank Braille pattern (QA). Not every format character: a few show a
 * glyph (the Arabic number signs). Matching stops at the first visible character, so a real text
 * costs next to nothing.
 */
const INVISIBLE_ONLY_RE = /^[\s\p{Cc}\p{Default_Ignorable_Code_Point}\uFFF9-\uFFFB\u{13430}-\u{1343F}\u2800]*$/u;

/** Code points an invisible text's refusal names: enough to recognise it, one line whatever its length. */
const SHOWN_INVISIBLE_CODE_POINTS = 4;

/**
 * Refuses a trimmed text (an event's, a token's name) that is empty or would show nothing,
 * naming the code points it holds; `consequence` says what that would do and what to send.
 */
export function rejectInvisible(trimmed: string, path: string, consequence: string): void {
  if (trimmed.length === 0) throw RpcError.invalidParams([{ path, message: 'must not be empty or only whitespace' }]);
  if (!INVISIBLE_ONLY_RE.test(trimmed)) return;
  const codePoints = [...trimmed];
  const shown = codePoints.slice(0, SHOWN_INVISIBLE_CODE_POINTS).map((char) => codePointName(char.codePointAt(0)!));
  const more = codePoints.length > SHOWN_INVISIBLE_CODE_POINTS ? ' ...' : '';
  throw RpcError.invalidParams([{ path, message: `holds only invisible characters (${shown.join(' ')}${more}), so ${consequence}` }]);
}

/**
 * Keys matched as sent (contextKey, idempotencyKey) that would print as another key: whitespace or
 * a control character at either end, or within, a control, an invisible character or whitespace
 * other than a space (QA: "build:42 " and "build:\u200b42" replaced no "build:42", and a retry
 * keyed "nightly\n" was no repeat of "nightly"). Variation selectors pass, as in session keys.
 */
const KEY_EDGE_RE = /^[\s\p{Cc}]|[\s\p{Cc}]$/u;
const KEY_HIDDEN_RE = /(?! )(?!\p{Variation_Selector})[\s\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]/u;
// Printable ASCII with no space at either end: most keys, passed in ~60 ns (~200 at 256
// characters) where the Unicode checks take ~300 ns at 44 characters and ~1.3 us at 256 (review),
// on system.event's path.
const PLAIN_ASCII_KEY_RE = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

export function rejectLookalikeKey(key: string, path: string): void {
  if (PLAIN_ASCII_KEY_RE.test(key)) return;
  const problem = (message: string) => RpcError.invalidParams([{ path, message }]);
  if (KEY_EDGE_RE.test(key)) throw problem('starts or ends with whitespace or a control character, so it would print like a key it does not match; remove it');
  const hidden = KEY_HIDDEN_RE.exec(key);
  if (hidden) {
    const at = [...key.slice(0, hidden.index)].length + 1;
    throw problem(`contains ${codePointName(hidden[0].codePointAt(0)!)} at character ${at}, a control, invisible or whitespace character other than a space, so it would print like a key it does not match; remove it`);
  }
}

export interface Validator<T extends TSchema> {
  /** Returns the value typed, or throws INVALID_PARAMS with every problem and its path. */
  parse(value: unknown): Static<T>;
  check(value: unknown): value is Static<T>;
  problems(value: unknown): ParamProblem[];
}

export function compileValidator<T extends TSchema>(schema: T): Validator<T> {
  const compiled = Compile(schema);
  const problems = (value: unknown) => {
    const found = compiled.Check(value) ? [] : describeProblems(compiled.Errors(value), value);
    const reported = new Set(found.map((problem) => problem.path));
    return [...found, ...loneSurrogateProblems(value, reported)].slice(0, MAX_REPORTED_PROBLEMS);
  };
  return {
    check: (value): value is Static<T> => compiled.Check(value) && loneSurrogateProblems(value).length === 0,
    problems,
    parse(value) {
      if (compiled.Check(value) && loneSurrogateProblems(value).length === 0) return value as Static<T>;
      throw invalidParams(problems(value), value);
    },
  };
}

/**
 * The problems, with a malformed `sessionKey`'s among them while the list has room: a key's grammar
 * is more than its schema says, so the methods check it once the params pass, and params failing
 * their schema would report a bad key only once the rest was fixed. Every param of that name is a
 * session key.
 */
function invalidParams(problems: ParamProblem[], value: unknown): RpcError {
  const sessionKey = (value as { sessionKey?: unknown } | null)?.sessionKey;
  const full = problems.length >= MAX_REPORTED_PROBLEMS;
  if (typeof sessionKey !== 'string' || full || problems.some((problem) => problem.path === '/sessionKey')) return RpcError.invalidParams(problems);
  const parsed = parseSessionKey(sessionKey);
  if (parsed.ok) return RpcError.invalidParams(problems);
  const { errors, acceptedForms } = sessionKeyError(sessionKey, parsed.reason).data;
  return RpcError.invalidParams([...problems, ...errors!], { acceptedForms });
}

interface RawError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/**
 * TypeBox reports every failed branch of a union and several errors for one unknown property; a
 * person needs one line per place. Keep the most telling error per path, in words that name the
 * fix. A union (its summary alone says "must match a schema in anyOf") is described by the branch
 * that got furthest: one that failed inside the value ("/after/k: must be at least 0") is the one
 * the caller meant; otherwise each branch is named ("must be at least 0, or an object").
 */
function describeProblems(raw: Iterable<unknown>, value: unknown): ParamProblem[] {
  const byPath = new Map<string, ParamProblem>();
  const keep = (problem: ParamProblem, keyword: string) => {
    if (!byPath.has(problem.path) || keyword === 'enum') byPath.set(problem.path, problem);
  };
  // Errors of union branches, held until their union's own error says where the union is.
  let branchErrors: Array<{ problem: ParamProblem; keyword: string }> = [];
  for (const item of raw) {
    const error = item as RawError & { schemaPath: string };
    const at = error.instancePath;
    if (error.keyword === 'anyOf') {
      const inside = (path: string) => path === at || path.startsWith(`${at}/`);
      const own = branchErrors.filter(({ problem }) => inside(problem.path));
      branchErrors = branchErrors.filter(({ problem }) => !inside(problem.path));
      const deeper = own.filter(({ problem }) => problem.path !== at);
      if (deeper.length > 0) for (const { problem, keyword } of deeper) keep(problem, keyword);
      else byPath.set(at, { path: at, message: eitherOf(own.map(({ problem }) => problem.message)) ?? error.message });
    } else {
      for (const problem of describe(error, value)) {
        if (error.schemaPath.includes('/anyOf/')) branchErrors.push({ problem, keyword: error.keyword });
        else keep(problem, error.keyword);
      }
    }
    if (byPath.size >= MAX_REPORTED_PROBLEMS) break;
  }
  // A union whose own error never came: TypeBox stops yielding errors at a limit, and an `after`
  // map of eight bad entries was answered with no problem at all. Its deepest errors say most.
  if (branchErrors.length > 0) {
    const depth = (path: string) => path.split('/').length;
    const shallowest = Math.min(...branchErrors.map(({ problem }) => depth(problem.path)));
    const deeper = branchErrors.filter(({ problem }) => depth(problem.path) > shallowest);
    for (const { problem, keyword } of deeper.length > 0 ? deeper : branchErrors) keep(problem, keyword);
  }
  return [...byPath.values()].slice(0, MAX_REPORTED_PROBLEMS);
}

/** "must be at least 0" and "must be an object" read as "must be at least 0, or an object". */
function eitherOf(messages: string[]): string | undefined {
  const unique = [...new Set(messages)];
  if (unique.length === 0) return undefined;
  const [first, ...rest] = unique;
  return [first, ...rest.map((message) => message.replace(/^must be /, ''))].join(', or ');
}

/** Messages for patterns whose regex says little to a person. */
const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  [AGENT_ID_PATTERN]: 'must be an agent id: letters a-z (either case), digits, "_" or "-", starting with a letter or digit',
  [NOT_BLANK_PATTERN]: 'must not be only whitespace (an unset variable?)',
};

/**
 * What a pattern error says: what the pattern wants, and a character no such value may hold, if
 * the value has one. An agent id with a zero-width space prints as a valid one, and "must be an
 * agent id" alone would leave its writer looking at what seems a good id.
 */
function patternMessage(pattern: string, error: RawError, value: unknown): string {
  const wanted = PATTERN_MESSAGES[pattern] ?? error.message;
  const found = valueAt(value, error.instancePath);
  const bad = typeof found === 'string' ? badCharacterOf(found) : null;
  return bad === null ? wanted : `${wanted}; it ${bad}`;
}

/** The value at a JSON pointer (RFC 6901) in `root`, or undefined. */
function valueAt(root: unknown, pointer: string): unknown {
  let node = root;
  for (const token of pointer.split('/').slice(1)) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[token.replaceAll('~1', '/').replaceAll('~0', '~')];
  }
  return node;
}

function describe(error: RawError, value: unknown): ParamProblem[] {
  const { keyword, params, instancePath } = error;
  switch (keyword) {
    case 'required': {
      const missing = (params['requiredProperties'] as string[] | undefined) ?? [];
      return missing.map((name) => ({ path: `${instancePath}/${name}`, message: 'is required' }));
    }
    // TypeBox reports each unknown property as a "boolean" (schema false) error at its own path.
    case 'boolean':
      return [{ path: instancePath, message: 'is not a known parameter' }];
    case 'additionalProperties':
      return [];
    case 'type':
      return [{ path: instancePath, message: params['type'] === 'null' ? 'must be null' : `must be ${article(String(params['type']))}` }];
    case 'minLength':
      return [
        {
          path: instancePath,
          message: params['limit'] === 1 ? 'must not be empty' : `must be at least ${String(params['limit'])} characters`,
        },
      ];
    case 'maxLength':
      return [{ path: instancePath, message: `must be at most ${String(params['limit'])} characters` }];
    case 'minimum':
      return [{ path: instancePath, message: `must be at least ${String(params['limit'])}` }];
    case 'maximum':
      return [{ path: instancePath, message: `must be at most ${String(params['limit'])}` }];
    case 'enum':
      return [{ path: instancePath, message: `must be one of ${listOf(params['allowedValues'])}` }];
    case 'const':
      return [{ path: instancePath, message: `must be ${JSON.stringify(params['allowedValue'])}` }];
    case 'pattern':
      return [{ path: instancePath, message: patternMessage(String(params['pattern']), error, value) }];
    default:
      return [{ path: instancePath, message: error.message }];
  }
}

function article(type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function listOf(values: unknown): string {
  return Array.isArray(values) ? values.map((v) => JSON.stringify(v)).join(', ') : String(values);
}
