/**
 * What can go wrong with the store, one class each, with a stable `code` to match on instead of
 * the message. The server answers StoreUnavailableError with STORE_UNAVAILABLE, StoreFullError with
 * STORE_FULL, BackupError with BACKUP_FAILED and StoreClosedError with SHUTTING_DOWN; the others
 * (StoreLockedError, StoreOpenError, NativeModuleError) stop the gateway at start-up.
 */
import path from 'node:path';
import Database from 'better-sqlite3';
import { mebibytes } from '../protocol/errors.js';
import type { DiskShortage } from './free-space.js';

/** SQLite's own code for a database file moved since it was opened (which it checks in rollback-journal mode only). */
const MOVED_CODE = 'SQLITE_READONLY_DBMOVED';

/** The SQLite result code of `error` (e.g. SQLITE_FULL), if SQLite raised it. */
export function sqliteCode(error: unknown): string | undefined {
  return error instanceof Database.SqliteError ? error.code : undefined;
}

/** Another gateway holds the database: SQLite's exclusive lock lasts as long as its connection. */
export class StoreLockedError extends Error {
  readonly code = 'STORE_LOCKED';
  readonly path: string;

  constructor(file: string, options?: ErrorOptions) {
    const dataDir = path.dirname(file);
    // The caller knows how the data dir was chosen, and so how to choose another (see gateway-command.ts).
    super(`data dir ${dataDir} is in use by another switchboard gateway: stop that gateway, or use another data dir`, options);
    this.name = 'StoreLockedError';
    this.path = file;
  }
}

/** The database could not be opened: not a database, corrupt, unreadable, or from a newer version. */
export class StoreOpenError extends Error {
  readonly code = 'STORE_OPEN_FAILED';
  readonly path: string;
  readonly sqliteCode: string | undefined;

  constructor(file: string, problem: string, fix: string, options?: ErrorOptions) {
    super(`cannot open the event store ${file}: ${problem}: ${fix}`, options);
    this.name = 'StoreOpenError';
    this.path = file;
    this.sqliteCode = sqliteCode(options?.cause);
  }
}

/**
 * A commit or a read failed (disk full, I/O error, a damaged file): the operation's changes were
 * rolled back. Worded for both: a read of a damaged page fails too (QA: "could not commit" for a read).
 */
export class StoreUnavailableError extends Error {
  readonly code = 'STORE_UNAVAILABLE';
  readonly sqliteCode: string | undefined;

  /** `changed`: what the call did all the same, when it is more than nothing (an ack's slices that committed). */
  constructor(cause: unknown, changed = 'the call changed nothing') {
    const code = sqliteCode(cause) ?? 'unknown';
    const detail = cause instanceof Error ? `${code}: ${cause.message}` : code;
    const fix = isCorruption(code)
      ? 'the database file is damaged: stop the gateway, then restore it from a backup or move it aside'
      : code === MOVED_CODE
        ? 'copy out first what the gateway still holds open, with `switchboard backup <file>` (given --url and --token if the data dir went with its socket and token file): stopping it loses what it wrote since; then restart it on that copy, or on the file now in its place'
        : 'free disk space or check the data dir, then retry';
    super(`the event store failed (${detail}); ${changed}: ${fix}`, { cause });
    this.name = 'StoreUnavailableError';
    this.sqliteCode = sqliteCode(cause);
  }
}

/** An event was not stored: its disk has less free space than the store keeps (see FreeSpaceGuard). */
export class StoreFullError extends Error {
  readonly code = 'STORE_FULL';
  readonly shortage: DiskShortage;

  constructor(shortage: DiskShortage) {
    super(
      `the event was not stored: the gateway's disk has ${mebibytes(shortage.availableBytes)} free, less than the ${mebibytes(shortage.minFreeBytes)} it keeps for acks and traces (--min-free-disk); events already stored are still delivered and acked: send it again once there is room`,
    );
    this.name = 'StoreFullError';
    this.shortage = shortage;
  }
}

/** A backup's copy could not be written; the store itself is untouched, and the copy removed. */
export class BackupError extends Error {
  readonly code = 'BACKUP_FAILED';
  readonly path: string;

  constructor(file: string, problem: string, options?: ErrorOptions) {
    super(`could not back up to ${file}: ${problem}`, options);
    this.name = 'BackupError';
    this.path = file;
  }
}

/** The store was closed; it takes no more work. */
export class StoreClosedError extends Error {
  readonly code = 'STORE_CLOSED';

  constructor() {
    super('the event store is closed and takes no more work: retry once the gateway has restarted');
    this.name = 'StoreClosedError';
  }
}

/**
 * better-sqlite3 is installed, but its native part cannot be loaded: never built, or built for
 * another Node.js (NODE_MODULE_VERSION). Rebuilding it where it is installed is the cure.
 */
export class NativeModuleError extends Error {
  readonly code = 'NATIVE_MODULE_UNUSABLE';

  constructor(cause: unknown) {
    // One line: node-bindings lists the 13 paths it tried, and Node's version mismatch spans four.
    const reason = (cause instanceof Error ? cause.message : String(cause))
      .split(/\s*Tried:/, 1)[0]!
      .replace(/\s+/g, ' ')
      .trim();
    super(
      `the gateway stores events with better-sqlite3, whose native part cannot be loaded (${reason}): run \`npm rebuild better-sqlite3\` where switchboard is installed, which builds it for this Node.js (it needs python3, make and g++)`,
      { cause },
    );
    this.name = 'NativeModuleError';
  }
}

/** SQLite's word that the file is not a database or is damaged. */
export function isCorruption(code: string | undefined): boolean {
  return code === 'SQLITE_NOTADB' || (code?.startsWith('SQLITE_CORRUPT') ?? false);
}

/**
 * The cause of every write refused once the database file was removed or replaced under a running
 * gateway: what it committed would go to a file nobody can open again, and a call would be
 * answered "stored" for an event the next start does not have (QA: `rm -rf` of the data dir).
 */
export function databaseMovedError(file: string, removed: boolean): Error {
  return new Database.SqliteError(`${file} was ${removed ? 'removed' : 'replaced'} while the gateway ran`, MOVED_CODE);
}

/** The open failure for a damaged database, wherever the damage shows: at open or on first read. */
export function corruptStoreError(file: string, code: string | undefined, cause: unknown): StoreOpenError {
  return new StoreOpenError(
    file,
    `not a switchboard database, or corrupt (${code})`,
    'restore it from a backup, or move it aside to start with an empty store',
    { cause },
  );
}
