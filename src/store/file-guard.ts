/**
 * Refuses to commit into a database file that was removed or replaced since it was opened (an
 * `rm -rf` of the data dir, a restore over a running gateway). SQLite goes on writing to the file
 * it holds open, which no start opens again: every call would be answered "stored" for an event
 * the next start does not have (QA). Checked before each commit that writes, not on a timer: a
 * stat costs ~4 µs, against the fsync a durable commit waits for, and no commit slips between two
 * looks. Only a removal or a rename is seen: a file copied over it (`cp`) keeps its inode.
 */
import { statSync } from 'node:fs';
import { NO_OBSERVER, type TransactionObserver } from './commit-queue.js';
import { databaseMovedError } from './errors.js';

export function databaseFileGuard(file: string): TransactionObserver {
  const opened = statSync(file);
  return {
    ...NO_OBSERVER,
    // Put back where it was (renamed back), the file takes commits again. A batch of reads
    // changes nothing: refused, it would be rolled back and read again, for nothing.
    beforeCommit(writes) {
      if (!writes) return;
      const now = statSync(file, { throwIfNoEntry: false });
      if (now?.dev !== opened.dev || now.ino !== opened.ino) throw databaseMovedError(file, now === undefined);
    },
  };
}
