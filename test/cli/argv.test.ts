/**
 * The argument fixes applied before cac parses: values attached to their options, two-word
 * commands joined, string options read back exactly as typed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { attachOptionValues, joinCommandGroup, rawOption, type DeclaredOption } from '../../src/cli/argv.js';

const test = suite('cli/argv');

const DECLARED: DeclaredOption[] = [
  { rawName: '-h, --help' },
  { rawName: '-v, --version' },
  { rawName: '--json' },
  { rawName: '--text <text>', required: true },
  { rawName: '--token <token>', required: true },
  { rawName: '--mode <mode>', required: true },
];

test('attachOptionValues: a value that starts with "-" stays a value', () => {
  assert.equal(attachOptionValues(['system event', '--token', '-hvQ3', '--text', '-5 degrees'], DECLARED), [
    'system event',
    '--token=-hvQ3',
    '--text=-5 degrees',
  ]);
  assert.equal(attachOptionValues(['--text', '--not-an-option'], DECLARED), ['--text=--not-an-option']);
});

test('attachOptionValues: other values, the empty one included, stay as typed', () => {
  assert.equal(attachOptionValues(['--text', 'x', '--token', ''], DECLARED), ['--text', 'x', '--token', '']);
});

test('attachOptionValues: a declared option where the value belongs means the value is missing', () => {
  for (const next of ['--mode', '--json', '-h', '--help', '--mode=now']) {
    assert.equal(attachOptionValues(['--text', next], DECLARED), ['--text', next], next);
  }
  assert.equal(attachOptionValues(['--text'], DECLARED), ['--text']);
});

test('attachOptionValues: boolean flags, positionals, the = form and everything after -- are left alone', () => {
  assert.equal(attachOptionValues(['trace', 'abc', '--json', '--text=x', '-z', '--', '--text', '-y'], DECLARED), [
    'trace',
    'abc',
    '--json',
    '--text=x',
    '-z',
    '--',
    '--text',
    '-y',
  ]);
  assert.equal(attachOptionValues(['--text', '--', 'x'], DECLARED), ['--text', '--', 'x']);
});

test('joinCommandGroup joins "system event" but not "system --help"', () => {
  assert.equal(joinCommandGroup(['system', 'event', '--text', 'x']), ['system event', '--text', 'x']);
  assert.equal(joinCommandGroup(['system', '--help']), ['system', '--help']);
  assert.equal(joinCommandGroup(['status', 'x']), ['status', 'x']);
});

test('rawOption: the last value as typed, in either form; undefined when missing or after --', () => {
  assert.is(rawOption(['--text', '007'], 'text'), '007');
  assert.is(rawOption(['--text=1e3', '--text=-5'], 'text'), '-5');
  assert.is(rawOption(['--text', '--json'], 'text'), undefined);
  assert.is(rawOption(['--', '--text', 'x'], 'text'), undefined);
  assert.is(rawOption(['--textual', 'x'], 'text'), undefined);
});

test.run();
