/** The store layer's public face: open a store; its interface, errors and options come with it. */
import { databasePath } from '../config/data-dir.js';
import { SqliteEventStore } from './sqlite.js';
import type { StoreOptions } from './types.js';

export type * from './types.js';
export type { CommitMetrics } from './commit-queue.js';
export { BackupError, StoreClosedError, StoreFullError, StoreLockedError, StoreOpenError, StoreUnavailableError } from './errors.js';
export { SqliteEventStore } from './sqlite.js';

/**
 * Opens the store in data dir `dir`, creating both if needed, and holds it until close().
 * Throws StoreLockedError when another gateway holds it, StoreOpenError when it cannot be opened.
 */
export function openStore(dir: string, options: StoreOptions): SqliteEventStore {
  return SqliteEventStore.open(databasePath(dir), options);
}
