/**
 * Argument handling around cac. Plain command lines are recognised without it (matchDirect), and
 * every option is read from the raw arguments exactly as typed: cac (through mri) turns
 * numeric-looking values into numbers, so `--text 007` would arrive as 7 and `--session-key 1e3`
 * as 1000. mri also reads a value that starts with "-" as flags, so such values are attached to
 * their options before cac parses. cac has no two-word commands, so "system event" is joined into
 * one argument first.
 */

import { isUtf8 } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { dataDirProblem, emptyVariableMessage } from '../config/data-dir.js';
import { ENV } from '../protocol/constants.js';
import type { CommandSpec } from './commands.js';
import { usageError } from './exit-codes.js';

/**
 * Throws a usage error when an argument was not UTF-8 on the command line. Node decodes each with
 * U+FFFD in place of bytes that are not UTF-8, so `--session-key caf\xe9` and `caf\xe8` were one
 * session, and the key or text stored was not the one given: stdin is refused for the same bytes.
 * Only an argument holding U+FFFD is looked at, in the raw bytes Linux keeps in
 * /proc/self/cmdline; elsewhere, or without /proc, it is taken as decoded.
 */
export function refuseNonUtf8Arguments(args: readonly string[]): void {
  if (!args.some((arg) => arg.includes('\uFFFD'))) return;
  let raw: Buffer[];
  try {
    const cmdline = readFileSync('/proc/self/cmdline');
    raw = [];
    for (let start = 0, end; start < cmdline.length; start = end + 1) {
      end = cmdline.indexOf(0, start);
      if (end === -1) end = cmdline.length;
      raw.push(cmdline.subarray(start, end));
    }
  } catch {
    return;
  }
  const mangled = raw.find((bytes) => !isUtf8(bytes) && args.includes(bytes.toString()))?.toString();
  if (mangled !== undefined) {
    const position = args.indexOf(mangled) + 1;
    throw usageError(`argument ${position} is not UTF-8 text (${JSON.stringify(mangled)}, with U+FFFD where the bytes were): give it as UTF-8`);
  }
}

/** Command groups whose second word names the command: `switchboard system event`. */
export const COMMAND_GROUPS = ['system', 'session', 'token'] as const;

export function joinCommandGroup(args: readonly string[]): string[] {
  const [first, second, ...rest] = args;
  if (first !== undefined && (COMMAND_GROUPS as readonly string[]).includes(first) && second !== undefined && !second.startsWith('-')) {
    return [`${first} ${second}`, ...rest];
  }
  return [...args];
}

/**
 * Every flag that options declared as cac writes them ("-h, --help", "--text <text>") are given
 * with, and whether it takes a value.
 */
export function declaredFlags(options: readonly string[]): Map<string, boolean> {
  const flags = new Map<string, boolean>();
  for (const option of options) {
    const takesValue = option.includes('<');
    for (const word of option.split(/[\s,]+/)) if (word.startsWith('-')) flags.set(word, takesValue);
  }
  return flags;
}

/**
 * Rewrites `--name -value` as `--name=-value` for every option declared with a value. mri would
 * read `--token -hQ3x` as a missing token followed by the flags -h, -Q, -3 and -x (help printed,
 * nothing sent), and `--text '-5 degrees'` as a missing text. As with getopt, an option that takes
 * a value takes the next argument whatever it looks like, unless that argument is itself a
 * declared option: then the value was forgotten (checkArgs reports it missing, and `--text --help`
 * shows the help). Other values are left as they are: mri reads them right, the empty string
 * included.
 */
export function attachOptionValues(args: readonly string[], flags: ReadonlyMap<string, boolean>): string[] {
  const isDeclaredOption = (arg: string) => flags.has(arg.split('=', 1)[0]!);
  const attached: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') return [...attached, ...args.slice(index)];
    const value = args[index + 1];
    if (flags.get(arg) === true && value?.startsWith('-') && value !== '--' && !isDeclaredOption(value)) {
      attached.push(`${arg}=${value}`);
      index++;
    } else {
      attached.push(arg);
    }
  }
  return attached;
}

/**
 * The last value given for `--name` in raw arguments (`--name value` or `--name=value`), exactly
 * as typed; undefined when absent or given without a value.
 */
export function rawOption(args: readonly string[], name: string): string | undefined {
  const flag = `--${name}`;
  let value: string | undefined;
  const end = args.indexOf('--');
  const scanned = end === -1 ? args : args.slice(0, end);
  scanned.forEach((arg, index) => {
    if (arg === flag) {
      const next = scanned[index + 1];
      value = next !== undefined && !next.startsWith('-') ? next : undefined;
    } else if (arg.startsWith(`${flag}=`)) {
      value = arg.slice(flag.length + 1);
    }
  });
  return value;
}

/** A setting's value and where it came from: `--name` or the environment variable's name. */
export interface Setting {
  value: string;
  from: string;
}

/**
 * `--name` as typed, else the environment variable `envName`, else undefined (the caller's
 * default). A variable that is set but empty is a usage error, never the default: it is most often
 * a script's unset variable (`SWITCHBOARD_TOKEN=$SCOPED`), and the default may act with other
 * rights (the admin token) or on another data dir than meant. An empty `--name` never gets here:
 * the parser refuses it (see matchDirect and checkArgs).
 */
export function optionOrEnv(args: readonly string[], name: string, envName: string, env: NodeJS.ProcessEnv = process.env): Setting | undefined {
  const flag = rawOption(args, name);
  if (flag !== undefined) return { value: flag, from: `--${name}` };
  const value = env[envName];
  if (value === '') throw usageError(emptyVariableMessage(envName));
  return value === undefined ? undefined : { value, from: envName };
}

/** The data dir given (`--data-dir`, else SWITCHBOARD_DATA_DIR), if any; a usage error when it cannot be the one meant (see dataDirProblem). */
export function dataDirOption(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Setting | undefined {
  const chosen = optionOrEnv(args, 'data-dir', ENV.dataDir, env);
  const problem = chosen && dataDirProblem(chosen.value);
  if (problem) throw usageError(`${chosen.from} ${JSON.stringify(chosen.value)} ${problem}`);
  return chosen;
}

/**
 * An integer option within [min, max] as typed (digits only), or undefined when absent; a usage
 * error otherwise.
 */
export function integerOption(args: readonly string[], name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const raw = rawOption(args, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) {
    // The upper bound named when it is the one passed, even where it is only the largest exact integer.
    const range = max === Number.MAX_SAFE_INTEGER && !(value > max) ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw usageError(`--${name} must be ${range} (got ${JSON.stringify(raw)})`);
  }
  return value;
}

/** Whether the flag `--name` was given (before any `--`). */
export function flagOption(args: readonly string[], name: string): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes(`--${name}`);
}

/**
 * The command `args` name, when they are in the plain form every example shows: the command, its
 * positionals, and its own options, each given once, a value as the next argument (not empty, not
 * starting with "-"). Anything else (help, version, `--name=value`, an unknown option, a missing
 * or empty value, a repeat) is for the full parser (cac-parser.ts) to parse or explain: undefined.
 */
export function matchDirect(args: readonly string[], commands: readonly CommandSpec[]): { command: CommandSpec; positionals: string[] } | undefined {
  const [name, ...rest] = args;
  const command = commands.find((spec) => spec.name === name);
  if (!command) return undefined;
  const options = declaredFlags(command.options.map((option) => option.flags));
  const seen = new Set<string>();
  const positionals: string[] = [];
  for (let index = 0; index < rest.length; index++) {
    const arg = rest[index]!;
    const takesValue = options.get(arg);
    if (takesValue === undefined) {
      if (arg.startsWith('-') || positionals.length === command.positionals.length) return undefined;
      positionals.push(arg);
      continue;
    }
    if (seen.has(arg)) return undefined;
    seen.add(arg);
    if (takesValue) {
      const value = rest[++index];
      if (value === undefined || value === '' || value.startsWith('-')) return undefined;
    }
  }
  return positionals.length === command.positionals.length ? { command, positionals } : undefined;
}
