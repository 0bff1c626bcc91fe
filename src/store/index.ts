/** The store layer's public face: open a store; its interface, errors and options come with it. */
import path from 'node:path';
import { DATA_FILES } from '../protocol/constants.js';
import type { StoreOptions } from './types.js';
import { WorkerEventStore } from './worker-store.js';

export type * from './types.js';
export type { CommitMetrics } from './commit-queue.js';
export { StoreClosedError, StoreLockedError, StoreOpenError, StoreUnavailableError } from './errors.js';
export { SqliteEventStore } from './sqlite.js';
export { WorkerEventStore } from './worker-store.js';

/**
 * Opens the store in data dir `dir` on a worker thread, creating both if needed, and holds it until
 * close(). Rejects with StoreLockedError when another gateway holds it, StoreOpenError when it
 * cannot be opened.
 */
export function openStore(dir: string, options: StoreOptions): Promise<WorkerEventStore> {
  return WorkerEventStore.open(path.join(dir, DATA_FILES.database), options);
}
