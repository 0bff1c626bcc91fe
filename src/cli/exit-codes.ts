import { printable } from '../protocol/printable.js';
import { describeWriteError } from './output.js';

/** The CLI's exit codes: documented in README.md and `switchboard --help`, asserted in tests. */
export const ExitCode = {
  /** The call succeeded (for `system event`: the event was routed and stored). */
  OK: 0,
  /** The gateway answered with an error (invalid params, store unavailable, ...). */
  GATEWAY_ERROR: 1,
  /** The command line is wrong: missing --text, bad --mode, unknown option or command. */
  USAGE: 2,
  /** No answer: could not connect, the token was refused, the call was refused before it ran, or it timed out. */
  UNREACHABLE: 3,
  /**
   * The answer could not be written to stdout (a full disk, a closed pipe): the call was done, but
   * what it answered never reached its reader, so a script must not take it for a success.
   */
  OUTPUT_FAILED: 4,
  /**
   * `gateway` only: stopped by SIGHUP, for a restart. Not 0, which a supervisor that restarts on
   * failure (systemd's Restart=on-failure, Docker's on-failure) takes for a stop, and restarts
   * nothing (operator QA): 75 is EX_TEMPFAIL of sysexits.h, "try again".
   */
  RESTART: 75,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export const EXIT_CODES_HELP = `Exit codes:
    0  ok: the gateway answered (for system event: routed and stored)
    1  the gateway answered with an error (but SHUTTING_DOWN, which left nothing done: 3)
    2  usage error (a required option missing, a bad value, an unknown option)
    3  no answer: no gateway reached (at the data dir's socket or the URL), token refused, the call
       refused before it ran (the gateway shutting down, or this address past its limits: too many
       wrong tokens, or connections), or timed out
    4  the answer could not be written to stdout (disk full, reader gone); what the call did stays done
  130  interrupted by Ctrl-C (SIGINT; 143 for SIGTERM): a system event or drain may already be done`;

/**
 * `switchboard session watch` runs until stopped rather than making one call: it ends well when
 * interrupted, and waits out a gateway restart or outage instead of failing on it.
 */
export const WATCH_EXIT_CODES_HELP = `Exit codes:
  0  stopped by SIGINT or SIGTERM, or the reader of its output went away (| head)
  1  the gateway refused the subscription or an ack (a malformed --session-key, another agent's session)
  2  usage error (--after without --session-key, unknown option)
  3  could not connect or subscribe (unreachable, token refused, timed out), or the token was
     revoked while watching; a gateway restart or outage is waited out, not an exit
  4  an event could not be written to stdout (disk full, not a reader that went away); it was not acked`;

/** `switchboard gateway` runs the service rather than calling it: its codes mean other things. */
export const GATEWAY_EXIT_CODES_HELP = `Exit codes:
  0  stopped by SIGINT or SIGTERM, after a graceful shutdown
  1  could not start (port or data dir in use, data dir unusable), or a second signal forced the stop
  2  usage error (bad --port, unknown option)
 75  stopped by SIGHUP, after a graceful shutdown, for a supervisor to start it again (one that
     restarts on failure does)`;

/**
 * With --json, a failure after the command line was accepted (exit 1 or 3) is one object on stdout
 * as well, `{"error":{"code","message","data"}}`: the gateway's JSON-RPC error as it came (exit 1),
 * or, when no answer came (exit 3), one of these codes with `data.name`. They live in 2000-2999,
 * apart from the gateway's (-32xxx, 1000-1999), so a script can tell who spoke. README.md
 * documents the same table; a test checks they agree.
 */
export const CliErrorCode = {
  /** Nothing answered at the URL (nothing listens there, or the network refused). */
  GATEWAY_UNREACHABLE: 2001,
  /** The gateway refused the token (HTTP 401). */
  TOKEN_REFUSED: 2002,
  /**
   * What answered is not a switchboard gateway (a plain one at a wss:// or https:// URL fails the
   * TLS handshake), presented a certificate Node.js does not trust, or refused the call with
   * another HTTP status.
   */
  GATEWAY_REJECTED: 2003,
  /** The connection broke before the answer came: the call may or may not have been done. */
  CONNECTION_CLOSED: 2004,
  /** No answer within --timeout. */
  TIMEOUT: 2005,
  /**
   * The call was cancelled before its answer came: through the client library's `signal`, which
   * the CLI gives no one-shot call. Ctrl-C ends a one-shot command as the signal does (130), and
   * stops a watch with 0; the code stays listed, as every code once published does.
   */
  ABORTED: 2006,
  /** No --token, no SWITCHBOARD_TOKEN, and no usable token file in the data dir (none, empty, holding more than a token, or unreadable). */
  NO_TOKEN: 2007,
} as const;

export type CliErrorName = keyof typeof CliErrorCode;

/** A failure as --json prints it: the shape of a JSON-RPC error object. */
export interface JsonError {
  code: number;
  message: string;
  data?: unknown;
}

/** An error that knows its exit code, its message for stderr and, past the command line, its --json form. */
export class CliError extends Error {
  readonly exitCode: ExitCode;
  /** Printed on stdout as `{"error": json}` when --json was given; usage errors have none. */
  readonly json: JsonError | undefined;
  constructor(exitCode: ExitCode, message: string, json?: JsonError) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
    this.json = json;
  }
}

/** No answer from the gateway (exit 3), with its CLI code for --json. */
export function noAnswer(name: CliErrorName, message: string): CliError {
  return new CliError(ExitCode.UNREACHABLE, message, { code: CliErrorCode[name], message, data: { name } });
}

/**
 * Exit 4: `what` (the answer, an event) could not be written to stdout, for `error`'s reason;
 * `consequence` says what the call did all the same, since the user cannot see it.
 */
export function outputFailed(what: string, error: unknown, consequence = ''): CliError {
  return new CliError(ExitCode.OUTPUT_FAILED, `could not write ${what} to stdout (${describeWriteError(error)})${consequence}`);
}

/**
 * Whether `error` is a CliError from any copy of this module: the bin and the code it loads
 * lazily are separate bundles, each with its own CliError class (see scripts/bundle.ts).
 */
export function isCliError(error: unknown): error is CliError {
  return error instanceof Error && error.name === 'CliError' && typeof (error as CliError).exitCode === 'number';
}

/**
 * A usage error quotes what was typed (an unknown option, a bad value), which can hold control and
 * bidirectional formatting characters, pasted or from a script's variable: made printable, like
 * everything else the CLI shows people, so it cannot drive the terminal or reorder the line.
 */
export function usageError(message: string): CliError {
  return new CliError(ExitCode.USAGE, printable(message));
}
