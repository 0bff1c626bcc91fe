/**
 * The full command line parser: cac, declared from the command table, prints the help and the
 * version and tells which command the arguments name; checkArgs holds them against that command's
 * declarations, and the command runs with the positionals it found.
 */
import cac, { type CAC } from 'cac';
import { VERSION } from '../version.js';
import { attachOptionValues, COMMAND_GROUPS, declaredFlags, joinCommandGroup } from './argv.js';
import { commandFirst, COMMANDS, everyCommandsFlags, type CommandSpec } from './commands.js';
import { EXIT_CODES_HELP, ExitCode, outputFailed, usageError } from './exit-codes.js';
import { writeOut } from './output.js';

/** cac declared with `commands`; a group's help (`switchboard token --help`) lists only the group's. */
function declare(commands: readonly CommandSpec[], group?: string): CAC {
  const cli = cac('switchboard');
  if (group !== undefined) cli.usage(`${group} <command> [options]`);
  for (const spec of commands) {
    const name = [spec.name, ...spec.positionals.map((positional) => `<${positional}>`)].join(' ');
    const command = cli.command(name, spec.summary).usage(`${name} ${spec.synopsis ?? '[options]'}`);
    for (const option of spec.options) command.option(option.flags, option.description);
    // As cac writes the usage line above it.
    command.example(`  $ ${spec.example}`);
  }
  // Listed with the commands, the exit codes that most share, and which commands have their own.
  const ownCodes = commands.filter((spec) => spec.exitCodes !== undefined).map((spec) => `switchboard ${spec.name}`);
  const ownNote = ownCodes.length === 0 ? '' : `\n  (${orList(ownCodes, 'and')} ${ownCodes.length === 1 ? 'has its' : 'have their'} own: see ${ownCodes.length === 1 ? 'its' : 'their'} --help)`;
  cli.help((sections) => {
    const command = COMMANDS.find((spec) => spec.name === cli.matchedCommandName);
    // cac pads an option without a default with a trailing space.
    const trimmed = sections.map((section) => ({ ...section, body: section.body.replace(/ +$/gm, '') }));
    if (command) {
      // What the command does under the version line (cac shows a command's summary only in the
      // list of commands), and its notes before the examples.
      trimmed.splice(1, 0, { body: command.summary });
      const examples = trimmed.findIndex((section) => section.title === 'Examples');
      trimmed.splice(examples < 0 ? trimmed.length : examples, 0, ...(command.notes ?? []));
    }
    return [...trimmed, { title: '', body: command ? (command.exitCodes ?? EXIT_CODES_HELP) : `${EXIT_CODES_HELP}${ownNote}` }];
  });
  cli.version(VERSION);
  // Printed by runWithCac, once it knows nothing else was given: cac prints them whatever follows,
  // the help of the whole CLI for a command it does not know.
  cli.showVersionOnExit = false;
  cli.showHelpOnExit = false;
  return cli;
}

/** Parses `joined` (command groups already joined) and runs the command they name. */
export async function runWithCac(given: readonly string[]): Promise<ExitCode> {
  // `switchboard help [command]`, as git and npm take it.
  if (given[0] === 'help') return runWithCac([...helpTopic(given.slice(1)), '--help']);
  const joined = commandFirst(given);
  const group = COMMAND_GROUPS.find((name) => name === joined[0]);
  const cli = group === undefined ? declare(COMMANDS) : declare(commandsOf(group), group);
  // The named command's own options, and --help and --version: `--text --ack` is a text to
  // `system event` as `--text --foo` is, though `session watch` declares --ack.
  const named = cli.commands.find((command) => command.name === joined[0]);
  const declared = [cli.globalCommand, ...(named === undefined ? cli.commands : [named])].flatMap((command) => command.options.map((option) => option.rawName));
  const args = attachOptionValues(joined, declaredFlags(declared));
  const parsed = cli.parse(['node', 'switchboard', ...args], { run: false });
  // cac printed the help; the version is printed here, for --version alone. `--version extra` is
  // an unknown command below, `--version --json` refused here, and `status -v` left to checkArgs:
  // none may exit 0 having ignored what was given.
  const versionAsked = parsed.options['version'] && !cli.matchedCommand && parsed.args.length === 0;
  const beside = args.find((arg) => arg !== '--version' && arg !== '-v');
  if (versionAsked && !parsed.options['help'] && beside !== undefined) {
    throw usageError(`--version takes nothing beside it (got \`${beside}\`): \`switchboard --version\``);
  }
  if (parsed.options['help'] || versionAsked) {
    // `help nosuch` and `nosuch --help` are a command mistyped, told as one: no help is about it.
    // `--help help` is the help, as `help help` is.
    const topic = parsed.args.map(String).filter((word, i) => !(i === 0 && word === 'help'));
    if (parsed.options['help'] && !cli.matchedCommand && topic.length > (group === undefined ? 0 : 1)) throw unknownCommand(topic.join(' '));
    if (parsed.options['help']) cli.outputHelp();
    else cli.outputVersion();
    // cac prints through console, which drops write errors: a help lost to a full disk must not
    // exit 0. A reader that went away (`--help | head -1`) is no failure, as for any output.
    await writeOut(process.stdout, '').catch((error: unknown) => {
      throw outputFailed(parsed.options['help'] ? 'the help' : 'the version', error);
    });
    return ExitCode.OK;
  }
  if (!cli.matchedCommand) {
    const [first] = parsed.args;
    if (first === undefined) {
      // An option no command takes (`-V`, `--HELP`) is named, not taken for one put first.
      const known = new Map([...everyCommandsFlags(), ['-h', false], ['--help', false], ['-v', false], ['--version', false]]);
      const unknown = args.find((arg) => arg.startsWith('-') && !known.has(arg.split('=', 1)[0]!));
      if (unknown !== undefined) {
        const name = unknown.split('=', 1)[0]!;
        const guess = closest(name, [...known.keys()], optionKey);
        throw usageError(`unknown option \`${name}\`: ${guess === undefined ? '' : `did you mean ${guess}? Or `}run \`switchboard --help\``);
      }
      // The error above the help, where it is seen first: the help alone reads like a success.
      process.stderr.write('switchboard: no command given: options go after one (switchboard <command> [options]); the commands are below\n');
      cli.outputHelp();
      return ExitCode.USAGE;
    }
    const typed = parsed.args.map(String).join(' ');
    if (group !== undefined && parsed.args.length === 1) {
      const names = commandsOf(group).map((spec) => spec.name);
      throw usageError(`"${group}" needs a command: ${orList(names, 'or')}; run \`switchboard ${group} --help\` for what ${names.length === 1 ? 'it does' : 'each does'}`);
    }
    throw unknownCommand(typed);
  }
  const spec = COMMANDS.find((command) => command.name === cli.matchedCommandName)!;
  return (await spec.load())(args, checkArgs(args, spec));
}

/**
 * What `switchboard help <words>` asks the help of: a command's (or a group's) name and nothing
 * else. An option, or a word after a command's name, is refused rather than ignored (`help status
 * --bogus`, `help system event extra`); words that name no command are an unknown command, below.
 */
function helpTopic(given: readonly string[]): string[] {
  // Asking for help again (`help --help`, `help help status`) asks the same.
  const words = given.filter((word) => word !== '-h' && word !== '--help' && word !== 'help');
  const option = words.find((word) => word.startsWith('-'));
  if (option !== undefined) throw usageError(`\`switchboard help\` takes the name of a command, not options (got \`${option}\`): \`switchboard help [command]\``);
  const topic = joinCommandGroup(words);
  const [name, ...rest] = topic;
  if (rest.length > 0 && COMMANDS.some((spec) => spec.name === name)) {
    throw usageError(`unexpected ${rest.length === 1 ? 'argument' : 'arguments'} \`${rest.join(' ')}\`: \`switchboard help\` takes the name of a command (\`switchboard help ${name}\`)`);
  }
  return topic;
}

function unknownCommand(typed: string): Error {
  const guess = closestCommand(typed);
  const hint = guess === undefined ? '' : ` did you mean \`switchboard ${guess}\`? Or`;
  return usageError(`unknown command "${typed}":${hint} run \`switchboard --help\` for the list`);
}

/** "a", "a or b", "a, b or c". */
function orList(items: readonly string[], conjunction: 'or' | 'and'): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} ${conjunction} ${items.at(-1)}`;
}

function commandsOf(group: string): CommandSpec[] {
  return COMMANDS.filter((spec) => spec.name.startsWith(`${group} `));
}

/**
 * Checks `args` (values attached, see attachOptionValues) against what `spec` declares, so that
 * nothing typed is silently ignored, and returns the positionals after the command's name (too few
 * is for the command to explain). cac takes more than the commands read: it accepts the camelCase
 * spelling of a declared option (`--sessionKey` for `--session-key`) and dotted names
 * (`--session-key.x`), while the commands read options exactly as declared (see rawOption), and it
 * sets aside whatever follows `--`, which no command reads. Each such spelling is an unknown
 * option here, with the declared option it is closest to; anything after `--` is an unexpected
 * argument. An empty value is refused rather than read as "not given", which would mean the
 * default, and a repeated one rather than have the last one win. This replaces cac's own checks
 * (unknown options, missing values, extra arguments), so every message reads alike.
 */
export function checkArgs(args: readonly string[], spec: CommandSpec): string[] {
  const declared = declaredFlags(spec.options.map((option) => option.flags));
  const help = `see \`switchboard ${spec.name} --help\``;
  const given = new Set<string>();
  const words: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') {
      // No command takes arguments after `--` (ids never start with "-"); cac would drop them.
      const after = args.slice(index + 1);
      if (after.length > 0) throw usageError(`${unexpected(after)} after \`--\`: put options before \`--\` (nothing after it is read); ${help}`);
      break;
    }
    if (!arg.startsWith('-')) {
      words.push(arg);
      continue;
    }
    const name = arg.split('=', 1)[0]!;
    const takesValue = declared.get(name);
    if (takesValue === undefined) {
      const guess = closest(name, [...declared.keys()], optionKey);
      throw usageError(`unknown option \`${name}\`: ${guess === undefined ? '' : `did you mean ${guess}? Or `}${help}`);
    }
    // A flag (--json, --ack) says the same however often it is given; a second value contradicts the first.
    if (!takesValue) {
      if (name !== arg) throw usageError(`${name} takes no value (got \`${arg}\`): give ${name} alone; ${help}`);
      continue;
    }
    if (given.has(name)) throw usageError(`${name} was given twice: give it once; ${help}`);
    given.add(name);
    // The value: after "=", or the next argument unless that is an option (see attachOptionValues).
    const value = name === arg ? (args[index + 1]?.startsWith('-') === false ? args[++index] : undefined) : arg.slice(name.length + 1);
    if (value === undefined) throw usageError(`${name} needs a value; ${help}`);
    // `--token "$SCOPED"` with the variable unset: the default (the admin token) is not what was meant.
    if (value === '') throw usageError(`${name} is empty (an unset shell variable?): give it a value; ${help}`);
  }
  // The first word is the command's name (cac matched it); too few positionals are the command's to explain.
  const [, ...positionals] = words;
  if (positionals.length > spec.positionals.length) {
    const takes = spec.positionals.length === 0 ? 'no arguments (quote a value that has spaces)' : `${spec.positionals.map((name) => `<${name}>`).join(' ')} only`;
    throw usageError(`${unexpected(positionals.slice(spec.positionals.length))}: switchboard ${spec.name} takes ${takes}; ${help}`);
  }
  return positionals;
}

function unexpected(args: readonly string[]): string {
  return `unexpected ${args.length === 1 ? 'argument' : 'arguments'} \`${args.join(' ')}\``;
}

/** How an option is compared for a hint: case, dashes and underscores aside (`--sessionKey`, `--session_key`). */
function optionKey(flag: string): string {
  return flag.replace(/[-_]/g, '').toLowerCase();
}

/** Most edits (insertions, deletions, substitutions) a typo may be from the command it meant. */
const MAX_TYPO_EDITS = 2;

/** The command `typed` is a typo of, if one is closest and close enough: `sesion list` → `session list`. */
export function closestCommand(typed: string): string | undefined {
  return closest(typed, COMMANDS.map((command) => command.name));
}

/** The one name nearest to `typed` as `key` sees them, within MAX_TYPO_EDITS; undefined on a tie. */
function closest(typed: string, names: readonly string[], key = (name: string) => name): string | undefined {
  const distances = names.map((name) => editDistance(key(typed), key(name)));
  const nearest = Math.min(...distances);
  const at = distances.flatMap((distance, index) => (distance === nearest ? [index] : []));
  return nearest <= MAX_TYPO_EDITS && at.length === 1 ? names[at[0]!] : undefined;
}

/** Levenshtein distance, one row at a time. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
