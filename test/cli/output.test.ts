/**
 * Writing to a stream whose reader may be gone: a failed write is an outcome for the writer, never
 * an 'error' event that crashes the process.
 */
import { Writable } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { describeWriteError, writeAll, writeLog, writeOut } from '../../src/cli/output.js';

const test = suite('cli/output');

/** A stream that takes everything, or fails every write with `code`, as a pipe with no reader does (EPIPE). */
function stream(code?: string): Writable & { written: string[] } {
  const written: string[] = [];
  const writable = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (code === undefined) {
        written.push(chunk.toString());
        callback();
      } else {
        callback(Object.assign(new Error(`write ${code}`), { code }));
      }
    },
  });
  return Object.assign(writable, { written });
}

/** Lets the stream's 'error' event (emitted on a later tick) fire: an unlistened one would end the run. */
const settled = () => new Promise((resolve) => setImmediate(resolve));

test('writeOut resolves true once the stream took the text', async () => {
  const out = stream();
  assert.is(await writeOut(out, 'line\n'), true);
  assert.equal(out.written, ['line\n']);
});

test('writeOut resolves false when the reader is gone (EPIPE), and the stream error crashes nothing', async () => {
  const out = stream('EPIPE');
  assert.is(await writeOut(out, 'line\n'), false);
  await settled();
  assert.is(out.listenerCount('error'), 1);
  // The stream is done for; a later write says so in its callback, and the listener is not added twice.
  await writeOut(out, 'again\n').catch(() => {});
  assert.is(out.listenerCount('error'), 1);
});

test('writeOut rejects with any other write error (a full disk is not a closed pipe)', async () => {
  const out = stream('ENOSPC');
  const error = await writeOut(out, 'line\n').then(
    () => undefined,
    (failure: NodeJS.ErrnoException) => failure,
  );
  assert.is(error?.code, 'ENOSPC');
  await settled();
});

test('writeAll rejects on every failed write, EPIPE included: a one-shot answer that no one read did not arrive', async () => {
  for (const code of ['EPIPE', 'ENOSPC']) {
    const error = await writeAll(stream(code), 'answer\n').then(
      () => undefined,
      (failure: NodeJS.ErrnoException) => failure,
    );
    assert.is(error?.code, code);
  }
  await settled();
});

test('describeWriteError words an errno alike for a pipe and a file, and falls back to the message', () => {
  // Node says "write EPIPE" for a pipe and "ENOSPC: no space left on device, write" for a file.
  assert.is(describeWriteError(Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32 })), 'EPIPE: broken pipe');
  assert.is(describeWriteError(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28 })), 'ENOSPC: no space left on device');
  assert.is(describeWriteError(new Error('stream destroyed')), 'stream destroyed');
});

test('writeLog: a log line that cannot be written (EPIPE) is dropped, and the process goes on', async () => {
  const log = stream('EPIPE');
  writeLog(log, 'SIGTERM received');
  writeLog(log, 'stopped');
  await settled();
  const ok = stream();
  writeLog(ok, 'listening');
  await settled();
  assert.equal(ok.written, ['listening\n']);
});

test.run();
