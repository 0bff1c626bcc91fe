/**
 * A data dir and its files are their owner's alone: the token is the gateway's admin key, and the
 * database holds every event. Shared by the data dir (token) and the store (database).
 */
import { closeSync, fchmodSync, mkdirSync, openSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** Read and write for the owner, nothing for anyone else. */
const PRIVATE_FILE_MODE = 0o600;
const PRIVATE_DIR_MODE = 0o700;

/**
 * Creates `dir` and its missing parents, 0700 (less the umask), each tried once. Node's recursive
 * mkdir takes every ENOENT for a missing parent and tries again, forever where the parent exists
 * and the file system refuses new entries with ENOENT (/proc): here that ENOENT is thrown.
 * EEXIST is thrown when a file is in the way, ENOTDIR when the path runs through one.
 */
export function makePrivateDir(dir: string): void {
  try {
    mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return;
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir || statSync(parent, { throwIfNoEntry: false })) throw error;
    makePrivateDir(parent);
  }
  // Once more now that the parent exists; this time an ENOENT is thrown.
  makePrivateDir(dir);
}

/**
 * Creates `file` holding `content`, mode 0600 whatever the umask; false, and nothing changed, when
 * it exists already (an existing file's mode is its owner's choice).
 */
export function createPrivateFile(file: string, content = ''): boolean {
  let fd: number;
  try {
    // 'wx': never overwrite a file another process wrote in the meantime.
    fd = openSync(file, 'wx', PRIVATE_FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    // open's mode passes through the umask, which may take the owner's own write bit (umask 0277):
    // set it outright.
    fchmodSync(fd, PRIVATE_FILE_MODE);
    writeFileSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}
