/**
 * UnauthenticatedSockets with stand-in sockets: what counts (UNAUTHENTICATED and IDLE, not
 * SERVING nor upgraded), the limit at its edge and one past it, which socket is closed to make
 * room (the oldest, strangers before IDLE ones), and its log (once when closing starts, once when
 * it has stopped).
 */
import { EventEmitter } from 'node:events';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { UnauthenticatedSockets } from '../../src/server/unauthenticated-sockets.js';
import { waitUntil } from '../helpers/gateway.js';

const test = suite('server: UnauthenticatedSockets');

/** A socket as the tracker sees it: closing emits 'close' on the next tick, as net.Socket does. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  constructor(
    readonly name: string,
    readonly remoteAddress = '127.0.0.1',
  ) {
    super();
  }
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    process.nextTick(() => this.emit('close', false));
    return this;
  }
}

function tracker(limit: number, quietMs?: number): { sockets: UnauthenticatedSockets<FakeSocket>; log: string[] } {
  const log: string[] = [];
  return { sockets: new UnauthenticatedSockets<FakeSocket>({ limit, log: (line) => log.push(line), ...(quietMs === undefined ? {} : { quietMs }) }), log };
}

function accept(sockets: UnauthenticatedSockets<FakeSocket>, ...names: string[]): FakeSocket[] {
  return names.map((name) => {
    const socket = new FakeSocket(name);
    sockets.accepted(socket);
    return socket;
  });
}

const closedOnes = (all: readonly FakeSocket[]) => all.filter((socket) => socket.destroyed).map((socket) => socket.name);

test('a limit that is not a whole number of at least 1 is a RangeError', () => {
  for (const limit of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new UnauthenticatedSockets({ limit, log: () => {} }), (error: unknown) => error instanceof RangeError && /maxUnauthenticatedSockets must be a whole number of at least 1/.test((error as Error).message), String(limit));
  }
  assert.not.throws(() => new UnauthenticatedSockets({ limit: 1, log: () => {} }));
});

test('at the limit every socket stays; one past it, the oldest is closed for the new one', () => {
  const { sockets, log } = tracker(3);
  const all = accept(sockets, 'a', 'b', 'c');
  assert.is(sockets.size, 3);
  assert.equal(closedOnes(all), [], 'the limit itself is allowed');
  assert.equal(log, []);
  all.push(...accept(sockets, 'd'));
  assert.equal(closedOnes(all), ['a']);
  assert.is(sockets.size, 3);
  all.push(...accept(sockets, 'e', 'f'));
  assert.equal(closedOnes(all), ['a', 'b', 'c'], 'oldest first, one for each new socket; the new ones stay');
  assert.is(sockets.size, 3);
});

test('a socket accepted again (a request replayed on it) is not counted twice', () => {
  const { sockets } = tracker(2);
  const [a] = accept(sockets, 'a');
  sockets.accepted(a!);
  assert.is(sockets.size, 1);
  assert.is(a!.listenerCount('close'), 1);
  const [b] = accept(sockets, 'b');
  assert.equal([a!.destroyed, b!.destroyed], [false, false]);
});

test('a closed socket no longer counts, and a socket already destroyed is not tracked', async () => {
  const { sockets } = tracker(2);
  const [a, b] = accept(sockets, 'a', 'b');
  a!.destroy();
  await new Promise((resolve) => process.nextTick(resolve));
  assert.is(sockets.size, 1);
  const gone = new FakeSocket('gone');
  gone.destroyed = true;
  sockets.accepted(gone);
  assert.is(sockets.size, 1);
  const [c] = accept(sockets, 'c');
  assert.equal([b!.destroyed, c!.destroyed], [false, false], 'room was made by the close, none was closed for it');
});

test('a SERVING socket does not count, and is never closed to make room; answered, it is IDLE and counts again', () => {
  const { sockets } = tracker(2);
  const [served] = accept(sockets, 'served');
  const answered = sockets.serve(served!);
  assert.is(sockets.size, 0);
  const others = accept(sockets, 'x', 'y', 'z');
  assert.equal(closedOnes(others), ['x'], 'the two newest strangers fill the limit, the served socket is not touched');
  assert.is(served!.destroyed, false);
  answered();
  assert.is(sockets.size, 2, 'IDLE counts');
  assert.equal(closedOnes(others), ['x', 'y'], 'back to IDLE at the limit: the oldest stranger made room');
  answered();
  assert.is(sockets.size, 2, 'answering twice changes nothing');
});

test('a socket with pipelined admitted requests is SERVING until the last is answered', () => {
  const { sockets } = tracker(5);
  const [socket] = accept(sockets, 'pipelined');
  const first = sockets.serve(socket!);
  const second = sockets.serve(socket!);
  first();
  assert.is(sockets.size, 0, 'one still in flight');
  second();
  assert.is(sockets.size, 1);
});

test('strangers are closed before IDLE sockets, however old these are; with no strangers left, the oldest IDLE one goes', () => {
  const { sockets } = tracker(3);
  const idle = accept(sockets, 'idle1', 'idle2');
  for (const socket of idle) sockets.serve(socket)();
  const strangers = accept(sockets, 's1', 's2', 's3');
  assert.equal(closedOnes([...idle, ...strangers]), ['s1', 's2']);
  const [idle3] = accept(sockets, 'idle3');
  sockets.serve(idle3!)();
  assert.equal(closedOnes([...idle, ...strangers]), ['s1', 's2', 's3'], 'idle3 coming back IDLE closed the last stranger');
  // Now three IDLE sockets at the limit: a new stranger closes the oldest of them.
  const [late] = accept(sockets, 'late');
  assert.equal(closedOnes([...idle, idle3!, late!]), ['idle1']);
});

test('a socket upgraded to an authenticated WebSocket never counts again, is never closed, and keeps no listener', () => {
  const { sockets } = tracker(1);
  const [ws] = accept(sockets, 'ws');
  const listeners = ws!.listenerCount('close');
  sockets.upgraded(ws!);
  assert.is(sockets.size, 0);
  assert.is(ws!.listenerCount('close'), listeners - 1);
  const strangers = accept(sockets, 'a', 'b', 'c');
  assert.equal(closedOnes([ws!, ...strangers]), ['a', 'b']);
  // An upgrade from IDLE (a keep-alive socket's next request) as well.
  const [keepAlive] = accept(sockets, 'keep-alive');
  sockets.serve(keepAlive!)();
  sockets.upgraded(keepAlive!);
  assert.is(sockets.size, 0);
});

test('the log: one line when closing starts, naming the busiest address; one when none was closed for the quiet time; then again for the next flood', async () => {
  const { sockets, log } = tracker(3, 20);
  sockets.accepted(new FakeSocket('other', '10.0.0.9'));
  for (let i = 0; i < 10; i++) sockets.accepted(new FakeSocket(`f${i}`, '10.0.0.1'));
  assert.is(log.length, 1, log.join('\n'));
  assert.is(
    log[0],
    '3 sockets are open without an authenticated request, the most the gateway holds (--max-unauthenticated-sockets): closing the oldest for each new one, so clients with a token still get in; 2 of them from 10.0.0.1: if that is a flood, block it before the gateway',
  );
  await waitUntil(() => log.length === 2, 'the line that says it stopped');
  assert.is(log[1], 'closed 8 sockets that had no authenticated request, to keep within 3; none for 0.02 s');
  sockets.accepted(new FakeSocket('next', '10.0.0.2'));
  assert.is(log.length, 3);
  assert.match(log[2]!, '; 3 of them from 10.0.0.1:');
  sockets.close();
});

test('a flood still going when the gateway stops is summed up at once, and its timer stopped; with none, close() logs nothing', async () => {
  const { sockets, log } = tracker(2, 20);
  sockets.close();
  assert.equal(log, []);
  for (let i = 0; i < 5; i++) sockets.accepted(new FakeSocket(`f${i}`));
  sockets.close();
  assert.is(log.length, 2, log.join('\n'));
  assert.is(log[1], 'closed 3 sockets that had no authenticated request, to keep within 2; the gateway stopped');
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.is(log.length, 2, 'no line after the quiet time');
  // Two are held from before: one more closes one.
  sockets.accepted(new FakeSocket('one-more'));
  sockets.close();
  assert.is(log.at(-1), 'closed a socket that had no authenticated request, to keep within 2; the gateway stopped');
});

test.run();
