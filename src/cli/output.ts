/**
 * Writing to stdout and stderr when their reader may be gone. Once the reader of a pipe exits
 * (`switchboard session watch | head -1`, `switchboard gateway 2>&1 | tee log` after Ctrl-C),
 * every write fails with EPIPE, and Node reports each failure twice: to the write's callback, and
 * as an 'error' event on the stream, which kills the process with a stack trace when nothing
 * listens. Here the callback decides, and the event is only listened to.
 */
import type { Writable } from 'node:stream';

/** Resolves true once `stream` took `text`, false when its reader is gone (EPIPE); rejects on other write errors. */
export function writeOut(stream: Writable, text: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    tolerateErrors(stream).write(text, (error) => {
      if (!error) resolve(true);
      else if ((error as NodeJS.ErrnoException).code === 'EPIPE') resolve(false);
      else reject(error);
    });
  });
}

/** Writes a log line, best effort: a service must not stop because no one reads its log any more. */
export function writeLog(stream: Writable, line: string): void {
  tolerateErrors(stream).write(`${line}\n`);
}

function tolerateErrors(stream: Writable): Writable {
  if (!stream.listeners('error').includes(ignore)) stream.on('error', ignore);
  return stream;
}

/** One listener for every stream, so a stream is never given a second one. */
function ignore(): void {}
