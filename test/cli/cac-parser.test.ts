/** The full parser's own logic: which command a mistyped one was meant to be, and what a command line may hold. */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkArgs, closestCommand } from '../../src/cli/cac-parser.js';
import { COMMANDS, type CommandSpec } from '../../src/cli/commands.js';
import { CliError, ExitCode } from '../../src/cli/exit-codes.js';

const test = suite('cli/cac-parser');

function command(name: string): CommandSpec {
  return COMMANDS.find((spec) => spec.name === name)!;
}

/** The usage error checkArgs throws for `args` of `name`, as its message. */
function refusal(name: string, args: readonly string[]): string {
  try {
    checkArgs([name, ...args], command(name));
  } catch (error) {
    assert.instance(error, CliError);
    assert.is((error as CliError).exitCode, ExitCode.USAGE);
    return (error as CliError).message;
  }
  assert.unreachable(`switchboard ${name} ${args.join(' ')} was accepted`);
  return '';
}

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

test('checkArgs: the declared spellings pass, in either form; the positionals after the command name come back', () => {
  assert.equal(checkArgs(['system event', '--text', 'x', '--session-key=main', '--json', '--timeout', '5'], command('system event')), []);
  assert.equal(checkArgs(['trace', '--json', 'id'], command('trace')), ['id']);
  assert.equal(checkArgs(['--json', 'trace', 'id'], command('trace')), ['id']);
  assert.equal(checkArgs(['gateway', '--data-dir', '/tmp/x', '--max-pending=1'], command('gateway')), []);
  // Too few is for the command to explain (with the hint where to find an id).
  assert.equal(checkArgs(['trace'], command('trace')), []);
});

test('checkArgs: an extra argument, a missing value and a flag given a value are named', () => {
  assert.is(
    refusal('system event', ['--text', 'Task', 'done']),
    'unexpected argument `done`: switchboard system event takes no arguments (quote a value that has spaces); see `switchboard system event --help`',
  );
  assert.is(refusal('trace', ['a', 'b', 'c']), 'unexpected arguments `b c`: switchboard trace takes <eventId> only; see `switchboard trace --help`');
  assert.is(refusal('system event', ['--text', '--mode', 'now']), '--text needs a value; see `switchboard system event --help`');
  assert.is(refusal('session peek', ['--limit']), '--limit needs a value; see `switchboard session peek --help`');
  assert.is(refusal('status', ['--json=true']), '--json takes no value (got `--json=true`): give --json alone; see `switchboard status --help`');
  // -v is the version of switchboard, not an option of a command (cac would print nothing and exit 0).
  assert.is(refusal('status', ['-v']), 'unknown option `-v`: see `switchboard status --help`');
});

test('checkArgs: the camelCase and snake_case spelling of every option of every command is refused, naming the declared one', () => {
  for (const spec of COMMANDS) {
    for (const option of spec.options) {
      const flag = option.flags.split(' ')[0]!;
      const name = flag.slice(2);
      if (!name.includes('-')) continue;
      const camel = `--${name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase())}`;
      const snake = `--${name.replaceAll('-', '_')}`;
      for (const typed of [camel, snake]) {
        for (const args of [[typed, 'x'], [`${typed}=x`]]) {
          assert.is(
            refusal(spec.name, args),
            `unknown option \`${typed}\`: did you mean ${flag}? Or see \`switchboard ${spec.name} --help\``,
            `${spec.name} ${args.join(' ')}`,
          );
        }
      }
    }
  }
});

test('checkArgs: near misses get a hint; dotted names and options of other commands are unknown', () => {
  assert.match(refusal('system event', ['--agentId', 'ops']), /^unknown option `--agentId`: did you mean --agent\? Or see/);
  assert.match(refusal('system event', ['--sesion-key', 'main']), /did you mean --session-key\?/);
  assert.match(refusal('token create', ['--nam', 'ci']), /did you mean --name\?/);
  assert.match(refusal('session peek', ['--session-key.x', 'main']), /^unknown option `--session-key.x`: did you mean --session-key\?/);
  assert.is(refusal('status', ['--limit', '3']), 'unknown option `--limit`: see `switchboard status --help`');
  assert.is(refusal('system event', ['--bogus']), 'unknown option `--bogus`: see `switchboard system event --help`');
});

test('checkArgs: anything after -- is an unexpected argument; a -- with nothing after it is harmless', () => {
  assert.is(
    refusal('system event', ['--text', 'hi', '--', '--session-key', 'agent:main:slack:channel:DASH']),
    'unexpected arguments `--session-key agent:main:slack:channel:DASH` after `--`: put options before `--` (nothing after it is read); see `switchboard system event --help`',
  );
  assert.match(refusal('trace', ['--', 'id']), /^unexpected argument `id` after `--`: /);
  checkArgs(['status', '--json', '--'], command('status'));
});

test('checkArgs: an empty value is refused, naming the option, in either form', () => {
  for (const args of [['--text', 'x', '--token', ''], ['--text', 'x', '--token=']]) {
    assert.is(
      refusal('system event', args),
      '--token is empty (an unset shell variable?): give it a value; see `switchboard system event --help`',
    );
  }
  assert.match(refusal('gateway', ['--data-dir', '']), /^--data-dir is empty/);
  assert.match(refusal('session peek', ['--agent=']), /^--agent is empty/);
});

test('checkArgs: an option that takes a value may be given once, in any form; a flag may repeat', () => {
  for (const args of [
    ['--text', 'x', '--session-key', 'main', '--session-key', 'agent:ops:main'],
    ['--text', 'x', '--session-key=main', '--session-key', 'agent:ops:main'],
  ]) {
    assert.is(refusal('system event', args), '--session-key was given twice: give it once; see `switchboard system event --help`');
  }
  assert.match(refusal('system event', ['--text', 'a', '--text', 'b']), /^--text was given twice/);
  assert.match(refusal('gateway', ['--port', '0', '--port=1']), /^--port was given twice/);
  checkArgs(['session watch', '--json', '--ack', '--json', '--ack'], command('session watch'));
});

test.run();
