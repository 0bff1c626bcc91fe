/**
 * Property tests of the session-key grammar (src/protocol/session-key.ts) with fast-check.
 *
 * Two kinds of input: anything at all (unicode strings, colon-joined junk tokens, near-valid keys
 * with one thing broken, keys around the 512 limit), for which parseSessionKey must never throw
 * and must either give a canonical key that parses to itself, or a one-line reason; and keys built
 * from the grammar itself, for which the canonical key and route are known in advance (an oracle
 * written from the README's table, independent of the parser's code).
 *
 * Runs are bounded (a few thousand each, well under 5 s in all). A failure prints fast-check's
 * seed and path; rerun one property with SB_FUZZ_SEED=<seed> to reproduce it.
 */
import fc from 'fast-check';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { MAX_AGENT_ID_LENGTH, MAX_SESSION_KEY_LENGTH } from '../../src/protocol/constants.js';
import type { Route } from '../../src/protocol/schemas.js';
import { isValidAgentId, parseSessionKey, type SessionKeyParse } from '../../src/protocol/session-key.js';

const test = suite('fuzz: session keys');

const SEED = process.env['SB_FUZZ_SEED'] === undefined ? undefined : Number(process.env['SB_FUZZ_SEED']);
const params = (numRuns: number): fc.Parameters<unknown> => (SEED === undefined ? { numRuns } : { numRuns, seed: SEED });

// ---------------------------------------------------------------- the oracle

const KINDS = ['direct', 'group', 'channel'] as const;
const KEYWORDS = ['agent', 'main', 'direct', 'group', 'channel', 'thread', 'topic'] as const;

/** A key described by its parts, as the README's table names them. */
interface KeySpec {
  agent: string;
  kind: 'main' | (typeof KINDS)[number];
  channel: string | null;
  account: string | null;
  /** The peer (direct) or the group/channel id. */
  id: string | null;
  suffix: { word: 'thread' | 'topic'; id: string } | null;
}

/** No lone surrogates (String.prototype.isWellFormed is past this project's ES2023 lib). */
function isWellFormed(s: string): boolean {
  return !/\p{Cs}/u.test(s);
}

function codePoints(s: string): number {
  return [...s].length;
}

/** The canonical key of a spec: keywords, agent id and channel lower-cased, ids as given. */
function canonicalOf(spec: KeySpec): string {
  const parts = ['agent', spec.agent.toLowerCase()];
  if (spec.kind === 'main') return [...parts, 'main'].join(':');
  if (spec.channel !== null) parts.push(spec.channel.toLowerCase());
  if (spec.account !== null) parts.push(spec.account);
  parts.push(spec.kind, spec.id!);
  if (spec.suffix) parts.push(spec.suffix.word, spec.suffix.id);
  return parts.join(':');
}

function routeOf(spec: KeySpec): Route {
  return {
    agentId: spec.agent.toLowerCase(),
    kind: spec.kind,
    channel: spec.channel === null ? null : spec.channel.toLowerCase(),
    account: spec.account,
    peer: spec.kind === 'direct' ? spec.id : null,
    id: spec.kind === 'group' || spec.kind === 'channel' ? spec.id : null,
    thread: spec.suffix?.word === 'thread' ? spec.suffix.id : null,
    topic: spec.suffix?.word === 'topic' ? spec.suffix.id : null,
  };
}

/** The key a route stands for, rebuilt from the route alone. */
function keyOfRoute(route: Route): string {
  return canonicalOf({
    agent: route.agentId,
    kind: route.kind,
    channel: route.channel,
    account: route.account,
    id: route.kind === 'direct' ? route.peer : route.id,
    suffix: route.thread !== null ? { word: 'thread', id: route.thread } : route.topic !== null ? { word: 'topic', id: route.topic } : null,
  });
}

// ---------------------------------------------------------------- invariants for any input

/** What must hold for every input, valid or not. Returns the result for further checks. */
function checkAny(input: string): SessionKeyParse {
  let result: SessionKeyParse;
  try {
    result = parseSessionKey(input);
  } catch (error) {
    throw new Error(`parseSessionKey threw on ${JSON.stringify(input)}: ${(error as Error)?.stack ?? String(error)}`);
  }
  assert.type(result, 'object');
  if (!result.ok) {
    assert.is(result.ok, false);
    assert.type(result.reason, 'string');
    assert.ok(result.reason.length > 0, `empty reason for ${JSON.stringify(input)}`);
    assert.not.match(result.reason, /[\r\n]/, `the reason is one line: ${JSON.stringify(result.reason)}`);
    // Reasons travel in JSON-RPC errors: a lone surrogate would arrive as U+FFFD.
    assert.ok(isWellFormed(result.reason), `the reason is well-formed UTF-16: ${JSON.stringify(result.reason)}`);
    // Tokens in reasons are cut; a reason must stay readable whatever the input length.
    assert.ok(result.reason.length < 1_000, `the reason is bounded (${result.reason.length} chars)`);
    return result;
  }
  const { sessionKey, route } = result.value;
  assert.type(sessionKey, 'string');
  assert.ok(codePoints(sessionKey) <= MAX_SESSION_KEY_LENGTH, `canonical key within ${MAX_SESSION_KEY_LENGTH}: ${sessionKey.length}`);
  assert.ok(isValidAgentId(route.agentId), `agent id ${JSON.stringify(route.agentId)} is valid`);
  assert.is(route.agentId, route.agentId.toLowerCase(), 'agent id is lower-case');
  if (route.channel !== null) assert.is(route.channel, route.channel.toLowerCase(), 'channel is lower-case');
  assert.is(keyOfRoute(route), sessionKey, 'the canonical key is exactly what its route describes');
  // Canonicalisation only changes case (or expands "main"): it never drops, adds or reorders text.
  if (input.toLowerCase() !== 'main') assert.is(sessionKey.toLowerCase(), input.toLowerCase(), `canonical ${sessionKey} of ${input}`);
  // Idempotent: the canonical key is itself a key, with the same canonical form and route.
  const again = parseSessionKey(sessionKey);
  if (!again.ok) throw new Error(`canonical key ${JSON.stringify(sessionKey)} (of ${JSON.stringify(input)}) does not parse: ${again.reason}`);
  assert.is(again.value.sessionKey, sessionKey, `canonical key of ${JSON.stringify(input)} is a fixed point`);
  assert.equal(again.value.route, route, `route of ${JSON.stringify(sessionKey)} is stable`);
  return result;
}

// ---------------------------------------------------------------- arbitraries

/** A word with each letter's case picked at random: keywords are case-insensitive. */
function anyCase(word: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((upper) => [...word].map((c, i) => (upper[i] ? c.toUpperCase() : c)).join(''));
}

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** Agent ids and channel names: [A-Za-z0-9][A-Za-z0-9_-]* up to 64. */
function validName(maxLength = MAX_AGENT_ID_LENGTH): fc.Arbitrary<string> {
  return fc
    .tuple(fc.constantFrom(...ALNUM), fc.string({ unit: fc.constantFrom(...ALNUM, '_', '-'), maxLength: maxLength - 1 }))
    .map(([first, rest]) => first + rest);
}

const loneSurrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((code) => String.fromCharCode(code));

/** Characters an id must not hold: whitespace (ASCII and Unicode), C0/C1 controls, lone surrogates. */
const badIdChar = fc.oneof(
  fc.constantFrom(' ', '\t', '\n', '\r', '\v', '\f', '\u0000', '\u001f', '\u007f', '\u0085', '\u00a0', '\u1680', '\u2000', '\u2028', '\u2029', '\u202f', '\u3000', '\ufeff'),
  // Invisible format characters (Cf): zero-width joiner and space, bidi override and isolate, soft hyphen;
  // and the other default-ignorable ones but variation selectors (which emoji carry): combining grapheme joiner, Hangul filler.
  fc.constantFrom('\u200d', '\u200b', '\u202e', '\u2066', '\u00ad', '\u034f', '\u3164'),
  loneSurrogate,
);

function isIdChar(c: string): boolean {
  return c !== ':' && !/(?!\p{Variation_Selector})[\s\p{Cc}\p{Cs}\p{Cf}\p{Default_Ignorable_Code_Point}]/u.test(c);
}

/** Characters allowed in ids: mostly ASCII, some of anything else (astral, combining, right-to-left, Kelvin sign). */
const idChar = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...ALNUM, '-', '_', '.', '+', '@', '#', '/', '=', '*') },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).filter(isIdChar) },
  { weight: 1, arbitrary: fc.constantFrom('\u212a', '\u017f', '\u0130', 'Σ', 'ß', 'é', 'e\u0301', '😀', '\u05d0', '\ufffd') },
);

/** Any valid id (peer, account, group/channel/thread/topic id); sometimes a keyword. */
const validId = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: idChar, minLength: 1, maxLength: 24 }) },
  { weight: 1, arbitrary: fc.constantFrom(...KEYWORDS).chain(anyCase) },
);

function isKindWord(token: string): boolean {
  return (KINDS as readonly string[]).includes(token.toLowerCase());
}

/**
 * Keys the grammar accepts, as specs. What the grammar itself rules out is left out: channel
 * names and accounts that are kind keywords (the README: "direct", "group" and "channel" cannot be
 * channel names), and accounts without a channel.
 */
const validSpec: fc.Arbitrary<KeySpec> = fc
  .record({
    agent: validName(),
    kind: fc.constantFrom('main', ...KINDS),
    channel: fc.option(fc.oneof(validName(), fc.constantFrom('main', 'thread', 'topic', 'agent').chain(anyCase)), { nil: null }),
    account: fc.option(validId, { nil: null }),
    id: validId,
    suffix: fc.option(fc.record({ word: fc.constantFrom('thread' as const, 'topic' as const), id: validId }), { nil: null }),
  })
  .filter((s) => s.channel === null || !isKindWord(s.channel))
  .filter((s) => s.account === null || !isKindWord(s.account))
  .map((s): KeySpec => {
    if (s.kind === 'main') return { agent: s.agent, kind: 'main', channel: null, account: null, id: null, suffix: null };
    // group and channel keys need a channel name; an account needs a channel; direct keys end with the peer.
    const channel = s.kind === 'direct' ? s.channel : (s.channel ?? 'slack');
    return {
      agent: s.agent,
      kind: s.kind,
      channel,
      account: channel === null ? null : s.account,
      id: s.id,
      suffix: s.kind === 'direct' ? null : s.suffix,
    };
  });

/** The key as a writer might type it: every keyword, agent id and channel in a random case. */
function writtenTokens(spec: KeySpec): fc.Arbitrary<string[]> {
  const parts: fc.Arbitrary<string>[] = [anyCase('agent'), anyCase(spec.agent)];
  if (spec.kind === 'main') parts.push(anyCase('main'));
  else {
    if (spec.channel !== null) parts.push(anyCase(spec.channel));
    if (spec.account !== null) parts.push(fc.constant(spec.account));
    parts.push(anyCase(spec.kind), fc.constant(spec.id!));
    if (spec.suffix) parts.push(anyCase(spec.suffix.word), fc.constant(spec.suffix.id));
  }
  return fc.tuple(...parts);
}

const validKey = validSpec.chain((spec) => writtenTokens(spec).map((tokens) => ({ spec, tokens, input: tokens.join(':') })));

/** Tokens that are nearly right: keywords in any case, empty, padded, with a bad character, too long. */
const junkToken = fc.oneof(
  fc.constantFrom(...KEYWORDS).chain(anyCase),
  fc.constant(''),
  validName(),
  validId,
  fc.tuple(validId, badIdChar, fc.nat(24)).map(([id, bad, at]) => id.slice(0, at) + bad + id.slice(at)),
  fc.tuple(fc.constantFrom(...KEYWORDS), badIdChar, fc.boolean()).map(([word, bad, before]) => (before ? bad + word : word + bad)),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.string({ unit: fc.constantFrom('a', 'A', '-', '_', '0'), minLength: MAX_AGENT_ID_LENGTH - 1, maxLength: MAX_AGENT_ID_LENGTH + 2 }),
  fc.constantFrom('\u212aelvin', 'ma\u0131n', 'MA\u0130N', 'gro\u00fcp', 'direct\u0000', 'agent\u200b', 'main.'),
);

/** One change to a valid key: a token replaced, inserted, removed or duplicated, or padding added. */
const nearValidKey = fc
  .tuple(validKey, fc.nat(), junkToken, fc.constantFrom('replace', 'insert', 'delete', 'duplicate', 'pad-start', 'pad-end', 'colon'))
  .map(([{ tokens }, at, junk, how]) => {
    const t = [...tokens];
    const i = at % (t.length + 1);
    switch (how) {
      case 'replace':
        t[Math.min(i, t.length - 1)] = junk;
        break;
      case 'insert':
        t.splice(i, 0, junk);
        break;
      case 'delete':
        t.splice(Math.min(i, t.length - 1), 1);
        break;
      case 'duplicate':
        t.splice(i, 0, t[Math.min(i, t.length - 1)]!);
        break;
      case 'pad-start':
        return ` ${t.join(':')}`;
      case 'pad-end':
        return `${t.join(':')}\n`;
      case 'colon':
        return i % 2 === 0 ? `${t.join(':')}:` : `:${t.join(':')}`;
    }
    return t.join(':');
  });

/** Any unicode text, including lone surrogates and many colons. */
const anyText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }),
  fc.string({ unit: 'grapheme', maxLength: 64 }),
  fc.string({ unit: fc.oneof(fc.constantFrom(':', ':', 'a', 'Z', '0', ' ', 'main', 'agent'), loneSurrogate, badIdChar), maxLength: 40 }),
  fc.array(junkToken, { maxLength: 9 }).map((tokens) => tokens.join(':')),
);

// ---------------------------------------------------------------- properties

test('any unicode string: never throws; ok with an idempotent canonical key, or a one-line reason', () => {
  fc.assert(
    fc.property(anyText, (input) => {
      checkAny(input);
    }),
    params(4_000),
  );
});

test('keys built from the grammar, keywords in any case: accepted, with the canonical key and route the README gives', () => {
  fc.assert(
    fc.property(validKey, ({ spec, input }) => {
      const result = checkAny(input);
      if (codePoints(input) > MAX_SESSION_KEY_LENGTH) {
        assert.not.ok(result.ok, 'over the limit is refused');
        return;
      }
      if (!result.ok) throw new Error(`${JSON.stringify(input)} follows the grammar but was refused: ${result.reason}`);
      assert.is(result.value.sessionKey, canonicalOf(spec));
      assert.equal(result.value.route, routeOf(spec));
    }),
    params(4_000),
  );
});

test('near-valid keys (one token replaced, inserted, removed, duplicated; padding; stray colons): never throw, stay consistent', () => {
  let accepted = 0;
  let refused = 0;
  fc.assert(
    fc.property(nearValidKey, (input) => {
      if (checkAny(input).ok) accepted++;
      else refused++;
    }),
    params(4_000),
  );
  // Both sides of the grammar's edge are reached, or the generator has drifted off it.
  assert.ok(accepted > 100 && refused > 100, `accepted ${accepted}, refused ${refused}`);
});

test('an empty or padded token anywhere is refused', () => {
  fc.assert(
    fc.property(validKey, fc.nat(), fc.constantFrom('', ' ', '\t', '\u00a0', '\u0000', '\u3000'), (key, at, pad) => {
      const tokens = [...key.tokens];
      const i = at % tokens.length;
      tokens[i] = pad === '' ? '' : `${tokens[i]}${pad}`;
      const input = tokens.join(':');
      const result = checkAny(input);
      assert.not.ok(result.ok, `${JSON.stringify(input)} has an empty or padded token ${i + 1} but was accepted`);
    }),
    params(2_000),
  );
});

test('keys around the 512 limit, counted in code points (astral characters count once)', () => {
  const longKey = fc
    .tuple(validSpec, fc.integer({ min: MAX_SESSION_KEY_LENGTH - 6, max: MAX_SESSION_KEY_LENGTH + 6 }), fc.constantFrom('x', '😀', 'é'))
    .filter(([spec]) => spec.kind !== 'main')
    .map(([spec, target, fill]) => {
      const base = canonicalOf(spec);
      const missing = Math.max(0, target - codePoints(base));
      // The peer or group/channel id grows; astral fill makes UTF-16 length and code points differ.
      const grown: KeySpec = { ...spec, id: spec.id! + fill.repeat(missing) };
      return { spec: grown, input: canonicalOf(grown) };
    });
  fc.assert(
    fc.property(longKey, ({ spec, input }) => {
      const result = checkAny(input);
      const length = codePoints(input);
      if (length <= MAX_SESSION_KEY_LENGTH) {
        if (!result.ok) throw new Error(`a key of ${length} code points was refused: ${result.reason}`);
        assert.is(result.value.sessionKey, canonicalOf(spec));
      } else {
        assert.not.ok(result.ok, `a key of ${length} code points was accepted`);
        if (!result.ok) assert.match(result.reason, String(MAX_SESSION_KEY_LENGTH));
      }
    }),
    params(2_000),
  );
  // Far past the limit, and huge: still a quick, bounded refusal.
  for (const size of [513, 4_096, 1_000_000]) checkAny(`agent:main:direct:${'p'.repeat(size)}`);
  checkAny('😀'.repeat(300));
  checkAny(':'.repeat(100_000));
});

test('agent ids and channel names at the 64 limit and one past it', () => {
  fc.assert(
    fc.property(fc.integer({ min: 62, max: 66 }), fc.boolean(), fc.boolean(), (length, inChannel, upper) => {
      const name = (upper ? 'A' : 'a').repeat(length);
      const input = inChannel ? `agent:ops:${name}:group:g1` : `agent:${name}:main`;
      const result = checkAny(input);
      assert.is(result.ok, length <= MAX_AGENT_ID_LENGTH, `${inChannel ? 'channel' : 'agent id'} of ${length}`);
    }),
    params(200),
  );
});

test('non-strings (from callers past no validator) are refused, never thrown on', () => {
  fc.assert(
    fc.property(fc.anything(), (value) => {
      if (typeof value === 'string') return;
      let result: SessionKeyParse;
      try {
        result = parseSessionKey(value as string);
      } catch (error) {
        throw new Error(`parseSessionKey threw on ${typeof value}: ${String(error)}`);
      }
      assert.not.ok(result.ok);
      if (!result.ok) assert.ok(result.reason.length > 0);
    }),
    params(500),
  );
});

test.run();
