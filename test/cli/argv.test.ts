/**
 * Argument handling around cac: the direct path for plain command lines, values attached to their
 * options, two-word commands joined, options read back exactly as typed.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { attachOptionValues, dataDirOption, declaredFlags, flagOption, integerOption, joinCommandGroup, matchDirect, optionOrEnv, rawOption } from '../../src/cli/argv.js';
import { COMMANDS } from '../../src/cli/commands.js';
import { CliError, ExitCode } from '../../src/cli/exit-codes.js';
import { thrownBy } from '../helpers/thrown.js';

const test = suite('cli/argv');

const DECLARED = declaredFlags(['-h, --help', '-v, --version', '--json', '--text <text>', '--token <token>', '--mode <mode>']);

test('declaredFlags: every flag of an option, and whether it takes a value', () => {
  assert.equal([...DECLARED], [
    ['-h', false],
    ['--help', false],
    ['-v', false],
    ['--version', false],
    ['--json', false],
    ['--text', true],
    ['--token', true],
    ['--mode', true],
  ]);
});

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

test('integerOption: digits only, within bounds, as typed; absent is undefined', () => {
  assert.is(integerOption(['--limit', '007'], 'limit', 1), 7);
  assert.is(integerOption(['--port=0'], 'port', 0, 65_535), 0);
  assert.is(integerOption([], 'limit', 1), undefined);
  for (const [raw, message] of [
    ['0', '--limit must be an integer of at least 1 (got "0")'],
    ['1e3', '--limit must be an integer of at least 1 (got "1e3")'],
    ['-1', '--limit must be an integer of at least 1 (got "-1")'],
    ['1.5', '--limit must be an integer of at least 1 (got "1.5")'],
    ['', '--limit must be an integer of at least 1 (got "")'],
    // Past the largest exact integer, that bound is what was passed.
    ['9007199254740992', '--limit must be an integer from 1 to 9007199254740991 (got "9007199254740992")'],
  ] as const) {
    try {
      integerOption([`--limit=${raw}`], 'limit', 1);
      assert.unreachable(`--limit=${raw} was accepted`);
    } catch (error) {
      assert.instance(error, CliError);
      assert.equal([(error as CliError).exitCode, (error as CliError).message], [ExitCode.USAGE, message]);
    }
  }
  assert.throws(() => integerOption(['--port', '65536'], 'port', 0, 65_535), /--port must be an integer from 0 to 65535 \(got "65536"\)/);
});

test('optionOrEnv: the flag, else the variable, else undefined; a variable set but empty is a usage error naming it', () => {
  const env = { SWITCHBOARD_TOKEN: 'from-env' };
  assert.equal(optionOrEnv(['--token', 'from-flag'], 'token', 'SWITCHBOARD_TOKEN', env), { value: 'from-flag', from: '--token' });
  assert.equal(optionOrEnv([], 'token', 'SWITCHBOARD_TOKEN', env), { value: 'from-env', from: 'SWITCHBOARD_TOKEN' });
  assert.is(optionOrEnv([], 'token', 'SWITCHBOARD_TOKEN', {}), undefined);
  // The flag wins: the empty variable is not read, so not refused.
  assert.equal(optionOrEnv(['--token', 'from-flag'], 'token', 'SWITCHBOARD_TOKEN', { SWITCHBOARD_TOKEN: '' }), { value: 'from-flag', from: '--token' });
  try {
    optionOrEnv([], 'token', 'SWITCHBOARD_TOKEN', { SWITCHBOARD_TOKEN: '' });
    assert.unreachable('an empty SWITCHBOARD_TOKEN was accepted');
  } catch (error) {
    assert.instance(error, CliError);
    assert.equal([(error as CliError).exitCode, (error as CliError).message], [
      ExitCode.USAGE,
      'SWITCHBOARD_TOKEN is set but empty: give it a value, or unset it to use the default',
    ]);
  }
});

test('dataDirOption: --data-dir, else SWITCHBOARD_DATA_DIR; a blank one, or one with a ~ no shell expanded, is a usage error naming where it came from', () => {
  assert.equal(dataDirOption(['--data-dir', '/srv/sb'], {}), { value: '/srv/sb', from: '--data-dir' });
  assert.equal(dataDirOption([], { SWITCHBOARD_DATA_DIR: '/srv/sb' }), { value: '/srv/sb', from: 'SWITCHBOARD_DATA_DIR' });
  assert.is(dataDirOption([], {}), undefined);
  for (const [args, env, message] of [
    [['--data-dir', '~/sbx'], {}, '--data-dir "~/sbx" starts with ~, which only a shell expands, and none did: give the full path'],
    [[], { SWITCHBOARD_DATA_DIR: '~/sbx' }, 'SWITCHBOARD_DATA_DIR "~/sbx" starts with ~, which only a shell expands, and none did: give the full path'],
    [['--data-dir', ' '], {}, '--data-dir " " names no directory: give a data dir\'s path'],
  ] as const) {
    const error = thrownBy(() => dataDirOption(args, env));
    assert.instance(error, CliError);
    assert.equal([(error as CliError).exitCode, (error as CliError).message], [ExitCode.USAGE, message]);
  }
});

test('flagOption: the bare flag, before any --', () => {
  assert.is(flagOption(['status', '--json'], 'json'), true);
  assert.is(flagOption(['status', '--', '--json'], 'json'), false);
  assert.is(flagOption(['status', '--jsonx'], 'json'), false);
});

test('matchDirect: a plain command line names its command and positionals', () => {
  const event = matchDirect(['system event', '--text', 'Task done!', '--mode', 'now', '--json', '--timeout', '500'], COMMANDS);
  assert.is(event?.command.name, 'system event');
  assert.equal(event?.positionals, []);
  const trace = matchDirect(['trace', '--json', '01a2-id'], COMMANDS);
  assert.equal([trace?.command.name, trace?.positionals], ['trace', ['01a2-id']]);
  assert.is(matchDirect(['status'], COMMANDS)?.command.name, 'status');
});

test('matchDirect: everything else is left to cac', () => {
  const cases = [
    [],
    ['frobnicate'],
    ['system', 'event'],
    ['system event', '--help'],
    ['system event', '-h'],
    ['system event', '--version'],
    ['system event', '--text=x'],
    ['system event', '--text', '-5'],
    ['system event', '--text'],
    ['system event', '--text', ''],
    ['system event', '--text', 'x', '--token', ''],
    ['system event', '--text', 'a', '--text', 'b'],
    ['system event', '--json', '--json'],
    ['system event', '--bogus'],
    ['system event', '--ack'],
    ['system event', 'stray'],
    ['system event', '--', '--text', 'x'],
    ['trace'],
    ['trace', 'a', 'b'],
    ['status', '--limit', '3'],
  ];
  for (const args of cases) assert.is(matchDirect(args, COMMANDS), undefined, JSON.stringify(args));
});

test('every command in the table has distinct flags, and help for each', () => {
  for (const command of COMMANDS) {
    const flags = command.options.map((option) => option.flags.split(' ')[0]);
    assert.is(new Set(flags).size, flags.length, command.name);
    assert.ok(command.summary && command.example.startsWith(`switchboard ${command.name}`), command.name);
  }
});

test.run();
