/**
 * Writing to stdout and stderr when their reader may be gone. Once the reader of a pipe exits
 * (`switchboard session watch | head -1`, `switchboard gateway 2>&1 | tee log` after Ctrl-C),
 * every write fails with EPIPE, and Node reports each failure twice: to the write's callback, and
 * as an 'error' event on the stream, which kills the process with a stack trace when nothing
 * listens. Here the callback decides, and the event is only listened to.
 */
import type { Writable } from 'node:stream';
import { getSystemErrorMap } from 'node:util';

/**
 * Resolves once `stream` took `text`; rejects with the write's error (EPIPE when its reader is
 * gone, ENOSPC on a full disk). For an answer that must reach its reader: a one-shot command's.
 */
export function writeAll(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    tolerateErrors(stream).write(text, (error) => (error ? reject(error) : resolve()));
  });
}

/** Resolves true once `stream` took `text`, false when its reader is gone (EPIPE); rejects on other write errors. */
export async function writeOut(stream: Writable, text: string): Promise<boolean> {
  try {
    await writeAll(stream, text);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EPIPE') return false;
    throw error;
  }
}

/** Writes a log line, best effort: a service must not stop because no one reads its log any more. */
export function writeLog(stream: Writable, line: string): void {
  tolerateErrors(stream).write(`${line}\n`);
}

/**
 * A failed write as people read it, "ENOSPC: no space left on device": Node words the same errno
 * "write EPIPE" for a pipe and "ENOSPC: no space left on device, write" for a file.
 */
export function describeWriteError(error: unknown): string {
  const { errno, message } = error as NodeJS.ErrnoException;
  const known = errno === undefined ? undefined : getSystemErrorMap().get(errno);
  return known ? `${known[0]}: ${known[1]}` : String(message ?? error);
}

function tolerateErrors(stream: Writable): Writable {
  if (!stream.listeners('error').includes(ignore)) stream.on('error', ignore);
  return stream;
}

/** One listener for every stream, so a stream is never given a second one. */
function ignore(): void {}
