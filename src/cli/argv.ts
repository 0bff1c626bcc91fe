/**
 * Argument handling cac does not do as we need. cac (through mri) turns numeric-looking values
 * into numbers, so `--text 007` would arrive as 7 and `--session-key 1e3` as 1000; string options
 * are read back from the raw argv instead. mri also reads a value that starts with "-" as flags,
 * so values are attached to their options before parsing. cac has no two-word commands, so
 * "system event" is joined into one argument before parsing.
 */

import { usageError } from './exit-codes.js';

/** Command groups whose second word names the command: `switchboard system event`. */
export const COMMAND_GROUPS = ['system', 'session', 'token'] as const;

export function joinCommandGroup(args: readonly string[]): string[] {
  const [first, second, ...rest] = args;
  if (first !== undefined && (COMMAND_GROUPS as readonly string[]).includes(first) && second !== undefined && !second.startsWith('-')) {
    return [`${first} ${second}`, ...rest];
  }
  return [...args];
}

/** What cac's Option exposes that matters here: `rawName` is e.g. "-h, --help" or "--text <text>". */
export interface DeclaredOption {
  rawName: string;
  required?: boolean;
}

/**
 * Rewrites `--name -value` as `--name=-value` for every option declared with a value. mri would
 * read `--token -hQ3x` as a missing token followed by the flags -h, -Q, -3 and -x (help printed,
 * nothing sent), and `--text '-5 degrees'` as a missing text. As with getopt, an option that takes
 * a value takes the next argument whatever it looks like, unless that argument is itself a
 * declared option: then the value was forgotten, and cac reports it missing. Other values are left
 * as they are: mri reads them right, the empty string included.
 */
export function attachOptionValues(args: readonly string[], declared: readonly DeclaredOption[]): string[] {
  const flagsOf = (option: DeclaredOption) => option.rawName.split(/[\s,]+/).filter((word) => word.startsWith('-'));
  const known = new Set(declared.flatMap(flagsOf));
  const takesValue = new Set(declared.filter((option) => option.required === true).flatMap(flagsOf));
  const isDeclaredOption = (arg: string) => known.has(arg.split('=', 1)[0]!);
  const attached: string[] = [];
  for (let index = 0; index < args.length; index++) {
    const arg = args[index]!;
    if (arg === '--') return [...attached, ...args.slice(index)];
    const value = args[index + 1];
    if (takesValue.has(arg) && value?.startsWith('-') && value !== '--' && !isDeclaredOption(value)) {
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

/**
 * An integer option within [min, max], or undefined when absent; a usage error otherwise. cac has
 * already turned the value into a number (or left a non-numeric string); `name` is the flag.
 */
export function integerOption(options: Record<string, unknown>, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const key = name.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
  const value = options[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer of at least ${min}` : `an integer from ${min} to ${max}`;
    throw usageError(`--${name} must be ${range} (got ${JSON.stringify(value)})`);
  }
  return value;
}
