/**
 * The files of a data dir are its owner's alone: the token is the gateway's admin key, and the
 * database holds every event. Shared by the data dir (token) and the store (database).
 */
import { closeSync, fchmodSync, openSync, writeFileSync } from 'node:fs';

/** Read and write for the owner, nothing for anyone else. */
const PRIVATE_FILE_MODE = 0o600;

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
