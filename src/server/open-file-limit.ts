/**
 * Connections over TCP are bounded by the files the process may open: past that, every accept
 * fails, the data dir's socket too, and the operator's CLI with it (QA: a publish-only token's
 * connections from 20 loopback addresses took every file, and `switchboard status` failed). So TCP
 * takes at most the limit less what is kept for the data dir's socket and the store.
 */
import { readFileSync } from 'node:fs';

/** Files kept from TCP connections: for the data dir's socket (the CLI, an operator) and the store (its files, a backup). */
export const FILES_KEPT_FROM_TCP = 256;

/** The fewest TCP connections taken however low the limit is: a gateway that takes none is no use. */
const MIN_TCP_CONNECTIONS = 16;

/**
 * How many files this process may hold open, sockets included, where the system tells: Linux's
 * /proc/self/limits (read after Node raised its soft limit to the hard one). Undefined elsewhere,
 * or when unlimited.
 */
export function openFileLimit(limits = procLimits()): number | undefined {
  const soft = /^Max open files\s+(\d+)\s/m.exec(limits ?? '')?.[1];
  return soft === undefined ? undefined : Number(soft);
}

/** TCP connections the gateway takes under the open-file limit; undefined: no bound known. */
export function tcpConnectionLimit(fileLimit: number | undefined): number | undefined {
  return fileLimit === undefined ? undefined : Math.max(MIN_TCP_CONNECTIONS, fileLimit - FILES_KEPT_FROM_TCP);
}

function procLimits(): string | undefined {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
}
