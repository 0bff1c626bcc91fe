/**
 * Where the gateway keeps its data, and the token that guards it. Shared by the gateway (which
 * creates both) and the CLI (which reads the token so a local user needs no configuration).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { DATA_FILES, ENV } from '../protocol/constants.js';

/** The data dir path is taken by a file (or runs through one). */
export class DataDirError extends Error {
  readonly code = 'DATA_DIR_NOT_A_DIRECTORY';
  readonly path: string;

  constructor(dataDir: string, cause: unknown) {
    super(`data dir ${dataDir} is not a directory (a file is in the way): pass --data-dir or ${ENV.dataDir} a directory`, { cause });
    this.name = 'DataDirError';
    this.path = dataDir;
  }
}

/**
 * The data dir `chosen` (by the CLI: `--data-dir`, else SWITCHBOARD_DATA_DIR, see optionOrEnv),
 * else the platform's user data dir. An empty choice is the caller's error to report: resolved, it
 * would be the working directory.
 */
export function resolveDataDir(chosen: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(chosen ?? platformDataDir(env));
}

function platformDataDir(env: NodeJS.ProcessEnv): string {
  if (process.platform === 'win32') return join(env['LOCALAPPDATA'] || join(homedir(), 'AppData', 'Local'), 'switchboard');
  if (process.platform === 'darwin') return join(homedir(), 'Library', 'Application Support', 'switchboard');
  return join(env['XDG_DATA_HOME'] || join(homedir(), '.local', 'share'), 'switchboard');
}

/** 32 random bytes: guessing is out of reach, and base64url keeps it header- and shell-safe. */
const TOKEN_BYTES = 32;
/** Makes a leaked admin token recognisable, and means it never starts with "-" like a CLI flag. */
const ADMIN_TOKEN_PREFIX = 'sba_';

export function tokenPath(dataDir: string): string {
  return join(dataDir, DATA_FILES.token);
}

/** Creates the data dir (0700) and the token file (0600) on first start; returns the token. */
export function ensureDataDir(dataDir: string): string {
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTDIR') throw error;
    throw new DataDirError(dataDir, error);
  }
  const existing = readToken(dataDir);
  if (existing) return existing;
  // The global Web Crypto, not node:crypto: that import would cost every CLI start ~2 ms, and
  // only a gateway's first start needs randomness.
  const secret = Buffer.from(crypto.getRandomValues(new Uint8Array(TOKEN_BYTES))).toString('base64url');
  const token = `${ADMIN_TOKEN_PREFIX}${secret}`;
  try {
    // 'wx': never overwrite a token another process wrote in the meantime.
    writeFileSync(tokenPath(dataDir), `${token}\n`, { mode: 0o600, flag: 'wx' });
    return token;
  } catch (error) {
    const raced = readToken(dataDir);
    if (raced) return raced;
    throw error;
  }
}

/** The token in the data dir, or undefined when there is none (yet). */
export function readToken(dataDir: string): string | undefined {
  try {
    const token = readFileSync(tokenPath(dataDir), 'utf8').trim();
    return token || undefined;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
