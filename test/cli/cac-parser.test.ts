/** The full parser's own logic: which command a mistyped one was meant to be. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { closestCommand } from '../../src/cli/cac-parser.js';

const test = suite('cli/cac-parser');

test('closestCommand: a typo within two edits of exactly one command names it', () => {
  assert.is(closestCommand('sesion list'), 'session list');
  assert.is(closestCommand('system evnt'), 'system event');
  assert.is(closestCommand('stauts'), 'status');
  assert.is(closestCommand('tarce'), 'trace');
  assert.is(closestCommand('gatway'), 'gateway');
});

test('closestCommand: nothing for what is far from every command', () => {
  for (const typed of ['frobnicate', 'system', 'system frob', '', 'session']) assert.is(closestCommand(typed), undefined, typed);
  // "session pee" is within two edits of "session peek" alone; "session xxxx" of none.
  assert.is(closestCommand('session pee'), 'session peek');
  assert.is(closestCommand('session xxxx'), undefined);
});

test.run();
