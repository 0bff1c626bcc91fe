/** The CLI's exit codes: documented in README.md and `switchboard --help`, asserted in tests. */
export const ExitCode = {
  /** The call succeeded (for `system event`: the event was routed and stored). */
  OK: 0,
  /** The gateway answered with an error (invalid params, store unavailable, ...). */
  GATEWAY_ERROR: 1,
  /** The command line is wrong: missing --text, bad --mode, unknown option or command. */
  USAGE: 2,
  /** No answer: could not connect, the token was refused, or the call timed out. */
  UNREACHABLE: 3,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit codes:
  0  ok (for system event: routed and stored)
  1  the gateway answered with an error
  2  usage error (missing --text, bad --mode, unknown option)
  3  could not connect, token refused, or timed out`;

/** An error that knows its exit code and its message for stderr. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  constructor(exitCode: ExitCode, message: string) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * Whether `error` is a CliError from any copy of this module: the bin and the code it loads
 * lazily are separate bundles, each with its own CliError class (see scripts/bundle.ts).
 */
export function isCliError(error: unknown): error is CliError {
  return error instanceof Error && error.name === 'CliError' && typeof (error as CliError).exitCode === 'number';
}

export function usageError(message: string): CliError {
  return new CliError(ExitCode.USAGE, message);
}
