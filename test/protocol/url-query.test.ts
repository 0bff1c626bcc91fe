import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { credentialInQuery, paramNameKey, paramsInQuery } from '../../src/protocol/url-query.js';

const test = suite('protocol/url-query');

const NAMES = new Set(['sessionKey', 'text', 'method'].map(paramNameKey));

test('paramsInQuery names, as given and in order, each query parameter that spells one of the names, in any case or separator', () => {
  assert.equal(paramsInQuery('/hooks/wake?sessionKey=a', NAMES), ['sessionKey']);
  assert.equal(paramsInQuery('/hooks/wake?x=1&session_key=a&TEXT=b&Session-Key', NAMES), ['session_key', 'TEXT', 'Session-Key']);
  // Decoded as a form is, split where servers and log tools split.
  assert.equal(paramsInQuery('/rpc?%73essionKey=a;method=b?text', NAMES), ['sessionKey', 'method', 'text']);
  // An object put in a query (jQuery's and qs's forms), and a long s, which NFKC folds (security QA).
  assert.equal(
    paramsInQuery('/hooks/wake?sessionKey%5B0%5D=a&params[sessionKey]=b&params.text=c&sessionKey[]=d&%C5%BFessionKey=e', NAMES),
    ['sessionKey[0]', 'params[sessionKey]', 'params.text', 'sessionKey[]', 'ſessionKey'],
  );
});

test('paramsInQuery finds nothing in a target without a query, an empty one, or one of other names', () => {
  for (const target of ['/hooks/wake', '/hooks/wake?', '/rpc?&&', '/rpc?sessionKeys=1&key2text=1&id=1', '/rpc?via[proxy]=1&a.b=2']) {
    assert.equal(paramsInQuery(target, NAMES), [], target);
  }
  // The path is not the query.
  assert.equal(paramsInQuery('/sessionKey/text', NAMES), []);
});

test('credentialInQuery still reads every part: a credential behind an empty one, or as a bare name', () => {
  assert.ok(credentialInQuery('/rpc?&token=x'));
  assert.ok(credentialInQuery('/rpc?x=1&&password'));
  assert.not.ok(credentialInQuery('/rpc?&x=1&'));
});

test.run();
