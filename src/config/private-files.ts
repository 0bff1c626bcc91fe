/**
 * A data dir and its files are their owner's alone: the token is the gateway's admin key, and the
 * database holds every event. Shared by the data dir (token) and the store (database).
 */
import { closeSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, realpathSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
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
 * it exists already (an existing file's mode is its owner's choice). A file with content appears
 * with all of it or not at all: it is written and synced under a name of its own, then linked into
 * place. Created in place, a second gateway starting at the same moment read the token file empty
 * (QA), and a crash between the open and the write would have left it empty for good. Where the
 * file system has no hard links (FAT, some network shares), it is created in place as before.
 */
export function createPrivateFile(file: string, content = ''): boolean {
  // An empty file cannot be seen half-written.
  if (content === '') return createInPlace(file, content);
  const draft = `${file}.${process.pid}-${Math.random().toString(36).slice(2)}.tmp`;
  let fd: number;
  try {
    // 'wx': never overwrite anything, a draft left by a crash included.
    fd = openSync(draft, 'wx', PRIVATE_FILE_MODE);
  } catch {
    // Whatever stops the draft (a dir not writable, say) is told by the file's own creation.
    return createInPlace(file, content);
  }
  try {
    try {
      // A write that fails here (a full disk) fails the creation: in place, it would leave the file part-written.
      writePrivate(fd, content);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    try {
      // link, unlike rename, never replaces a file another process put there in the meantime.
      linkSync(draft, file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      // No hard links here (EPERM on FAT, EISDIR on Windows' exFAT, ENOTSUP on some shares...), or
      // another failure that creating the file in place reports in its own words.
      return createInPlace(file, content);
    }
  } finally {
    removeDraft(draft);
  }
}

/** Best effort: the file is in place (or not) whatever becomes of its draft (held by a virus scanner, say). */
function removeDraft(draft: string): void {
  try {
    rmSync(draft, { force: true });
  } catch {
    // Left behind, mode 0600 like the file.
  }
}

function createInPlace(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', PRIVATE_FILE_MODE);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writePrivate(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

function writePrivate(fd: number, content: string): void {
  // open's mode passes through the umask, which may take the owner's own write bit (umask 0277):
  // set it outright.
  fchmodSync(fd, PRIVATE_FILE_MODE);
  writeFileSync(fd, content);
}

/**
 * Of `files`, those that other users may read or write, each with its mode: files this code did
 * not create (an older version's, a restored backup, a hand-made token). Their mode is left to
 * their owner, who is told. Windows has no such bits to check.
 */
export function exposedFiles(files: readonly string[]): Array<{ file: string; mode: number }> {
  if (process.platform === 'win32') return [];
  const exposed: Array<{ file: string; mode: number }> = [];
  for (const file of files) {
    const mode = statSync(file, { throwIfNoEntry: false })?.mode;
    if (mode !== undefined && (mode & 0o077) !== 0) exposed.push({ file, mode: mode & 0o777 });
  }
  return exposed;
}

/**
 * Why other users could replace the data dir's files (the token, the database), if they could: the
 * dir belongs to another user, or others may write in it. Its files' own modes cannot stop a
 * rename or an unlink in the dir. Windows has no such bits to check.
 */
export function replaceableDir(dir: string): string | undefined {
  if (process.platform === 'win32') return undefined;
  const stat = statSync(dir, { throwIfNoEntry: false });
  return stat === undefined ? undefined : replaceableBy(stat, false);
}

/**
 * Why others could replace entries of a directory, if they could: it belongs to another user (or,
 * `rootMay`, to neither this user nor root), or others may write in it. Sticky (1777, as /tmp):
 * others may add entries, but not rename or remove this user's.
 */
function replaceableBy(stat: Stats, rootMay: boolean): string | undefined {
  const uid = process.getuid?.();
  const ours = uid === undefined || stat.uid === uid;
  if (!ours && !(rootMay && stat.uid === 0)) return `belongs to another user (uid ${stat.uid})`;
  if ((stat.mode & 0o1000) !== 0) return undefined;
  const mode = `mode 0${(stat.mode & 0o777).toString(8)}`;
  if ((stat.mode & 0o002) !== 0) return `can be written by other users (${mode})`;
  // The group of a user's own dir only when it is not the user's own group: where each user has a
  // group of their own (umask 002), 0775 is the norm of a user's own dirs; a dir writable by
  // another group (/srv/shared root:devs 2775, or a data dir given to nogroup: operator QA) lets
  // each of its members rename what is in it (review).
  if ((stat.mode & 0o020) !== 0 && (!ours || stat.gid !== process.getegid?.())) return `can be written by its group (gid ${stat.gid}, ${mode})`;
  return undefined;
}

/**
 * `dir` with every link in its path followed, if no other user could change what that path names;
 * else why they could. replaceableDir(dir) alone holds only until a link in the path changes: a
 * backup into a link of another user's, pointing at a directory of the gateway user's, passed the
 * check, and the link was turned to the other user's own directory before the copy was opened
 * there, by name (QA). The path this returns has no links, and it and each directory above it is
 * this user's or root's, with no entries others may rename: root's sticky /tmp is fine (QA: a
 * gateway not run as root was refused the backup into /tmp that the README names). Throws what
 * resolving it threw (a directory missing: another user could make it, so it is not taken as it is).
 */
export function resolvedPrivateDir(dir: string): { dir: string } | { problem: string } {
  const resolved = realpathSync(dir);
  if (process.platform === 'win32') return { dir: resolved };
  for (let at = resolved; ; at = dirname(at)) {
    const problem = replaceableBy(statSync(at), true);
    if (problem !== undefined) return { problem: at === resolved ? `its directory ${resolved} ${problem}` : `${at}, a directory on its path, ${problem}` };
    if (dirname(at) === at) return { dir: resolved };
  }
}
