/**
 * Where the gateway keeps its data, and the token that guards it. Shared by the gateway (which
 * creates both) and the CLI (which reads the token so a local user needs no configuration).
 */
import { lstatSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { DATA_FILES, ENV, TOKEN_PREFIX } from '../protocol/constants.js';
import { tokenProblem } from '../protocol/token-format.js';
import { createPrivateFile, makePrivateDir } from './private-files.js';

/** The data dir path is taken by a file (or runs through one), or the file system refuses to create it (/proc). */
export class DataDirError extends Error {
  readonly code: 'DATA_DIR_NOT_A_DIRECTORY' | 'DATA_DIR_NOT_CREATED';
  readonly path: string;

  constructor(dataDir: string, cause: NodeJS.ErrnoException) {
    const inTheWay = cause.code === 'EEXIST' || cause.code === 'ENOTDIR';
    super(
      inTheWay
        ? `data dir ${dataDir} is not a directory (a file is in the way): pass --data-dir or ${ENV.dataDir} a directory`
        : `data dir ${dataDir} cannot be created (${cause.message}): pass --data-dir or ${ENV.dataDir} a directory on a file system that takes new ones`,
      { cause },
    );
    this.name = 'DataDirError';
    this.code = inTheWay ? 'DATA_DIR_NOT_A_DIRECTORY' : 'DATA_DIR_NOT_CREATED';
    this.path = dataDir;
  }
}

/**
 * The token file is there but gives no usable token: it holds nothing (an interrupted first start,
 * an editor, a `> token`), or more than a token (a second line, a space, a character an HTTP header
 * cannot carry, so no client could send it as `Authorization: Bearer <token>`), or it cannot be
 * read (another user's data dir, a directory in its place, a data dir path through a file). Each
 * says the file and the fix: the CLI reads it on every call, as whoever runs it.
 */
export class TokenFileError extends Error {
  readonly code: 'TOKEN_FILE_MISSING' | 'TOKEN_FILE_EMPTY' | 'TOKEN_FILE_INVALID' | 'TOKEN_FILE_UNREADABLE';
  readonly path: string;

  private constructor(code: TokenFileError['code'], file: string, message: string, options?: { cause: unknown }) {
    super(`token file ${file} ${message}`, options);
    this.name = 'TokenFileError';
    this.code = code;
    this.path = file;
  }

  /** Not an error to readToken (a gateway's first start writes it): to a client that needs it. */
  static missing(file: string): TokenFileError {
    return new TokenFileError('TOKEN_FILE_MISSING', file, 'does not exist: start `switchboard gateway` with this data dir once to create it');
  }

  static empty(file: string): TokenFileError {
    return new TokenFileError('TOKEN_FILE_EMPTY', file, `is empty: ${REWRITE_FIX}`);
  }

  /** `problem`: what besides the token it holds, as tokenProblem says it ("holds a line break"). */
  static invalid(file: string, problem: string): TokenFileError {
    return new TokenFileError('TOKEN_FILE_INVALID', file, `${problem}, not a token alone, so no client could send it: ${REWRITE_FIX}`);
  }

  static dangling(file: string): TokenFileError {
    return new TokenFileError('TOKEN_FILE_UNREADABLE', file, 'is a symbolic link to nothing: remove it to have the gateway write a new admin token when it next starts, or point it at the token');
  }

  static unreadable(file: string, cause: NodeJS.ErrnoException): TokenFileError {
    return new TokenFileError('TOKEN_FILE_UNREADABLE', file, `cannot be read (${cause.code ?? cause.message}): ${unreadableFix(cause.code)}`, { cause });
  }
}

const REWRITE_FIX = 'delete it to have the gateway write a new admin token when it next starts, or write the token into it alone';

function unreadableFix(code: string | undefined): string {
  if (code === 'EACCES' || code === 'EPERM') return 'run as the user that owns the data dir (the one the gateway runs as), or give this user access to the data dir and read access to the file (the dir, not the file, may be what is refused)';
  if (code === 'EISDIR') return 'a directory is in its place: remove it to have the gateway write a new admin token when it next starts';
  if (code === 'ENOTDIR') return 'the data dir is not a directory: give the data dir the gateway uses';
  return 'check the file and its data dir';
}

/** Why an environment variable set to "" is refused rather than read as unset (see optionOrEnv). */
export function emptyVariableMessage(name: string): string {
  return `${name} is set but empty: give it a value, or unset it to use the default`;
}

/**
 * Why a data dir given (an option, a variable, the library's dataDir) cannot be the one meant, if
 * it cannot: blank, it resolves to the working directory; starting with `~`, no shell expanded it
 * (it was quoted, or came from a systemd unit's Environment=), and it would be a directory named
 * `~` in the working directory (operator QA: `--data-dir '~/sbx'` made ./~/sbx and used it).
 */
export function dataDirProblem(given: string): string | undefined {
  if (given.trim() === '') return "names no directory: give a data dir's path";
  if (/^~(?:$|[\\/]|[\w.-]+(?:$|[\\/]))/.test(given)) return 'starts with ~, which only a shell expands, and none did: give the full path';
  return undefined;
}

/**
 * The data dir `chosen` (by the CLI: `--data-dir`, else SWITCHBOARD_DATA_DIR, see optionOrEnv),
 * else the platform's user data dir. An empty choice is the caller's error to report (see
 * dataDirProblem): resolved, it would be the working directory.
 */
export function resolveDataDir(chosen: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(chosen ?? platformDataDir(env));
}

/**
 * As os.homedir(), which takes HOME first where it is set, without loading node:os for it: the CLI
 * resolves the data dir on every call, and the module costs a tenth of a millisecond to load.
 */
function homedir(): string {
  return (process.platform !== 'win32' && process.env['HOME']) || process.getBuiltinModule('node:os').homedir();
}

function platformDataDir(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'win32') return join(env['LOCALAPPDATA'] || join(homedir(), 'AppData', 'Local'), 'switchboard');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'switchboard');
  // The XDG Base Directory spec: a relative path is invalid and must be ignored. Honoured, it would
  // put the data dir (and the admin token) under whatever directory the command ran in.
  const xdg = env['XDG_DATA_HOME'];
  return join(xdg && isAbsolute(xdg) ? xdg : join(homedir(), '.local', 'share'), 'switchboard');
}

/** 32 random bytes: guessing is out of reach, and base64url keeps it header- and shell-safe. */
const TOKEN_BYTES = 32;

/**
 * An admin token written by hand shorter than this (in characters; 24 random bytes as base64) is
 * taken, with a warning: whoever can reach the gateway may guess a short one (QA: "short" was
 * taken silently).
 */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

export function tokenPath(dataDir: string): string {
  return join(dataDir, DATA_FILES.token);
}

export function databasePath(dataDir: string): string {
  return join(dataDir, DATA_FILES.database);
}

/** True when the data dir holds a database with something in it (SQLite takes an empty file for a new one). */
export function hasDatabase(dataDir: string): boolean {
  return (statSync(databasePath(dataDir), { throwIfNoEntry: false })?.size ?? 0) > 0;
}

export function socketPath(dataDir: string): string {
  return join(dataDir, DATA_FILES.socket);
}

/** Creates the data dir (0700) on first start. */
export function ensureDataDir(dataDir: string): void {
  try {
    makePrivateDir(dataDir);
  } catch (error) {
    const errno = error as NodeJS.ErrnoException;
    // Others (EACCES, EPERM, ...) are reported as permission problems by the gateway command.
    if (errno.code !== 'EEXIST' && errno.code !== 'ENOTDIR' && errno.code !== 'ENOENT') throw error;
    throw new DataDirError(dataDir, errno);
  }
}

/**
 * Writes the token file (0600) in the data dir on first start, or when it was removed; returns
 * the token, and whether it was written now.
 */
export function ensureAdminToken(dataDir: string): { token: string; written: boolean } {
  const existing = readToken(dataDir);
  if (existing) return { token: existing, written: false };
  // The global Web Crypto, not node:crypto: that import would cost every CLI start ~2 ms, and
  // only a gateway's first start needs randomness.
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES))).toString('base64url');
  const token = `${TOKEN_PREFIX.admin}${secret}`;
  const file = tokenPath(dataDir);
  if (createPrivateFile(file, `${token}\n`)) return { token, written: true };
  // Another process wrote one since it was read: that one is the token.
  const theirs = readToken(dataDir);
  if (theirs !== undefined) return { token: theirs, written: false };
  if (lstatSync(file, { throwIfNoEntry: false })?.isSymbolicLink() === true) throw TokenFileError.dangling(file);
  // Removed again since: start over, as on a first start.
  return ensureAdminToken(dataDir);
}

/**
 * Takes back the token ensureAdminToken wrote, for a start that failed before anyone could use
 * it. Best effort: the start's own failure is what its caller must hear of.
 */
export function removeWrittenToken(dataDir: string): void {
  try {
    rmSync(tokenPath(dataDir), { force: true });
  } catch {
    // Left behind: the next start takes it as the token, as it would any other.
  }
}

/**
 * The token in the data dir, or undefined when there is no token file (yet). An empty one is a
 * TokenFileError: taking it for a missing file would have the gateway try to write a new token
 * where one exists, and the CLI say that the file does not exist. So is one holding more than a
 * token (the gateway would start with an admin token nobody can present), and one that cannot be read.
 */
export function readToken(dataDir: string): string | undefined {
  const file = tokenPath(dataDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw TokenFileError.unreadable(file, error as NodeJS.ErrnoException);
  }
  const token = text.trim();
  if (!token) throw TokenFileError.empty(file);
  const problem = tokenProblem(token);
  if (problem !== undefined) throw TokenFileError.invalid(file, problem);
  return token;
}
