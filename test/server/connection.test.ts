/**
 * Connection on a fake socket: what a request that arrives while the connection closes is
 * answered (and that it is never run), and the order of answers and the close frame.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { WebSocket } from 'ws';
import { ADMIN } from '../../src/server/auth.js';
import { Connection, type Refusal, type SocketStream } from '../../src/server/connection.js';
import type { RpcDispatcher } from '../../src/protocol/jsonrpc.js';
import type { CallContext } from '../../src/server/context.js';
import { charge } from '../../src/store/read-budget.js';

const test = suite('server/connection');

interface Harness {
  connection: Connection;
  /** Frames and the close, in the order the socket got them. */
  wire: unknown[];
  /** The frames as sent. */
  rawWire: string[];
  /** Frames the dispatcher was handed. */
  dispatched: string[];
  /** Answers the oldest dispatched frame, its reads having taken `readBytes` of its budget. */
  answer(response: string, readBytes?: number): void;
  /** The dispatcher fails the oldest dispatched frame (a bug: it answers every error it is handed). */
  fail(error: Error): void;
  /** What waits to be written, as the socket reports it, and whether the stream wants a 'drain'. */
  setUnsent(bytes: number, needDrain?: boolean): void;
  /** The stream's 'drain': what was waiting has been written. */
  drain(): void;
  /** The socket reports the frames sent so far as written, in order (their send callbacks). */
  written(): void;
  /** The socket hands `bytes` more to the network. */
  sent(bytes: number): void;
}

/** onDispatch runs as a frame is dispatched, before its call is pending: what a handler does at once. */
function harness(onDispatch?: (text: string, connection: Connection) => void): Harness {
  const wire: unknown[] = [];
  const rawWire: string[] = [];
  const dispatched: string[] = [];
  const pending: Array<{ resolve: (response: string) => void; reject: (error: Error) => void; context: CallContext }> = [];
  const writeCallbacks: Array<() => void> = [];
  const socket = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    send: (frame: string, written?: () => void) => {
      if (written) writeCallbacks.push(written);
      rawWire.push(frame);
      wire.push(JSON.parse(frame));
    },
    close(code: number, reason: string) {
      wire.push({ close: code, reason });
      socket.readyState = 2;
    },
    terminate: () => wire.push('terminated'),
    ping: () => wire.push('ping'),
    pause: () => wire.push('paused'),
    resume: () => wire.push('resumed'),
  };
  const dispatcher = {
    handleFrame: (text: string, context: CallContext) => {
      dispatched.push(text);
      onDispatch?.(text, connection);
      return new Promise<string>((resolve, reject) => pending.push({ resolve, reject, context }));
    },
  };
  const drains: Array<() => void> = [];
  const stream = {
    cork: () => undefined,
    uncork: () => undefined,
    writableLength: 0,
    writableNeedDrain: false,
    bytesWritten: 0,
    once: (_event: 'drain', listener: () => void) => drains.push(listener),
  };
  const connection = new Connection(
    1,
    socket as unknown as WebSocket,
    stream as unknown as SocketStream,
    '127.0.0.1',
    ADMIN,
    dispatcher as unknown as RpcDispatcher<CallContext>,
    {
      maxBufferedBytes: 1 << 20,
      answerHighWaterBytes: 4 << 20,
      maxInFlight: 16,
      onSlowConsumer: (cut, unsentBytes) => wire.push({ slowConsumer: cut.connectionId, unsentBytes }),
    },
  );
  return {
    connection,
    wire,
    rawWire,
    dispatched,
    answer: (response, readBytes = 0) => {
      const { resolve, context } = pending.shift()!;
      charge(context.readBudget, readBytes);
      resolve(response);
    },
    fail: (error) => pending.shift()!.reject(error),
    setUnsent: (bytes, needDrain = true) => {
      socket.bufferedAmount = bytes;
      stream.writableLength = needDrain ? bytes : 0;
      stream.writableNeedDrain = needDrain;
    },
    drain: () => drains.splice(0).forEach((listener) => listener()),
    written: () => writeCallbacks.splice(0).forEach((written) => written()),
    sent: (bytes) => void (stream.bytesWritten += bytes),
  };
}

/** A text frame's arguments to receive(). */
const frame = (value: unknown): [Buffer, boolean] => [Buffer.from(JSON.stringify(value)), false];
const raw = (text: string, isBinary = false): [Buffer, boolean] => [Buffer.from(text), isBinary];
const settle = () => new Promise((resolve) => setImmediate(resolve));

const SHUTDOWN: Refusal = { name: 'SHUTTING_DOWN', message: 'the gateway is shutting down; nothing was done, retry once it is back' };

test('while in-flight calls finish, a new request is refused (not run), a notification gets nothing, a batch an array; then the close', async () => {
  const { connection, wire, dispatched, answer } = harness();
  connection.receive(...frame({ jsonrpc: '2.0', id: 1, method: 'system.event', params: { text: 'in flight' } }));
  const closed = connection.close(1001, 'gateway shutting down', SHUTDOWN);

  connection.receive(...frame({ jsonrpc: '2.0', id: 2, method: 'system.event', params: { text: 'too late' } }));
  connection.receive(...frame({ jsonrpc: '2.0', method: 'system.event', params: { text: 'a notification' } }));
  connection.receive(...frame([{ jsonrpc: '2.0', id: 'a', method: 'gateway.status' }, { jsonrpc: '2.0', method: 'gateway.status' }]));
  await settle();
  const refusal = (id: number | string) => ({
    jsonrpc: '2.0',
    id,
    error: { code: 1003, message: SHUTDOWN.message, data: { name: 'SHUTTING_DOWN' } },
  });
  assert.equal(wire, [refusal(2), [refusal('a')]]);
  assert.is(dispatched.length, 1, 'only the call that was in flight ran');

  answer(JSON.stringify({ jsonrpc: '2.0', id: 1, result: 'stored' }));
  await closed;
  assert.equal(wire.slice(2), [{ jsonrpc: '2.0', id: 1, result: 'stored' }, { close: 1001, reason: 'gateway shutting down' }]);

  // After the close frame nothing more may be sent (RFC 6455 §5.5.1), refusals included.
  connection.receive(...frame({ jsonrpc: '2.0', id: 3, method: 'gateway.status' }));
  await settle();
  assert.is(wire.length, 4);
});

test('a refused frame keeps JSON-RPC 2.0\'s rules: parse error, empty batch, invalid batch members, notifications', async () => {
  const { connection, wire, rawWire, dispatched } = harness();
  connection.receive(...frame({ jsonrpc: '2.0', id: 1, method: 'gateway.status' }));
  void connection.close(1001, 'gateway shutting down', SHUTDOWN);

  connection.receive(...raw('{bad json'));
  connection.receive(...raw('[]'));
  connection.receive(...raw('[1,2]'));
  connection.receive(...raw('[{"jsonrpc":"2.0","method":"gateway.status"}]'));
  connection.receive(...raw('{"jsonrpc":"2.0","id":9007199254740993,"method":"gateway.status"}'));
  await settle();
  const invalid = { code: -32600, message: 'Invalid Request: expected a JSON-RPC 2.0 request object', data: { name: 'INVALID_REQUEST' } };
  assert.equal(wire.slice(0, 3), [
    { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: the request is not valid JSON', data: { name: 'PARSE_ERROR' } } },
    { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: empty batch', data: { name: 'INVALID_REQUEST' } } },
    [
      { jsonrpc: '2.0', id: null, error: invalid },
      { jsonrpc: '2.0', id: null, error: invalid },
    ],
  ]);
  // The batch of one notification got nothing; the large id is answered as sent, not rounded.
  assert.is(wire.length, 4);
  assert.is(rawWire.at(-1)!.slice(0, 40), '{"jsonrpc":"2.0","id":9007199254740993,"');
  assert.is(dispatched.length, 1);
});

test('at the in-flight limit frames are held and the socket paused; answers run them in arrival order, then reading resumes; nothing is refused', async () => {
  const { connection, wire, dispatched, answer } = harness();
  const status = (id: number) => frame({ jsonrpc: '2.0', id, method: 'gateway.status' });
  for (let id = 1; id <= 16; id++) connection.receive(...status(id));
  assert.equal(wire, [], 'at the limit, not past it: reading on');
  connection.receive(...status(17));
  connection.receive(...frame({ jsonrpc: '2.0', method: 'system.event', params: { text: 'a notification' } }));
  connection.receive(...raw('not json'));
  await settle();
  assert.is(dispatched.length, 16);
  assert.equal(wire, ['paused'], 'paused once, nothing answered or refused');

  answer('{"jsonrpc":"2.0","id":1,"result":{}}');
  await settle();
  assert.is(dispatched.length, 17, 'one answer frees one place');
  assert.is(JSON.parse(dispatched[16]!).id, 17);
  answer('{"jsonrpc":"2.0","id":2,"result":{}}');
  answer('{"jsonrpc":"2.0","id":3,"result":{}}');
  await settle();
  assert.equal(dispatched.slice(17), ['{"jsonrpc":"2.0","method":"system.event","params":{"text":"a notification"}}', 'not json']);
  assert.equal(wire.slice(1), [{ jsonrpc: '2.0', id: 1, result: {} }, { jsonrpc: '2.0', id: 2, result: {} }, { jsonrpc: '2.0', id: 3, result: {} }, 'resumed']);

  // Reading again: a frame with room runs at once.
  answer('{"jsonrpc":"2.0","id":4,"result":{}}');
  await settle();
  connection.receive(...status(18));
  assert.is(dispatched.length, 20);
});

test('a frame whose dispatch fails (a bug) still frees its place: a held frame runs, a close waits for nothing more; the failure still reaches unhandledRejection', async () => {
  const { connection, wire, dispatched, answer, fail } = harness();
  const rejections: unknown[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason);
  process.on('unhandledRejection', onRejection);
  try {
    for (let id = 1; id <= 17; id++) connection.receive(...frame({ jsonrpc: '2.0', id, method: 'gateway.status' }));
    await settle();
    assert.is(dispatched.length, 16);
    const bug = new Error('a bug');
    fail(bug);
    await settle();
    assert.is(dispatched.length, 17, 'the held frame ran');
    assert.equal(rejections, [bug]);
    for (let id = 2; id <= 17; id++) answer(`{"jsonrpc":"2.0","id":${id},"result":{}}`);
    await connection.close(1001, 'gateway shutting down', SHUTDOWN);
    assert.equal(wire.at(-1), { close: 1001, reason: 'gateway shutting down' });
  } finally {
    process.off('unhandledRejection', onRejection);
  }
});

test('frames held at the in-flight limit when the connection closes are refused, not run, and reading resumes for the close', async () => {
  const { connection, wire, dispatched, answer } = harness();
  for (let id = 1; id <= 17; id++) connection.receive(...frame({ jsonrpc: '2.0', id, method: 'gateway.status' }));
  const closed = connection.close(1001, 'gateway shutting down', SHUTDOWN);
  await settle();
  assert.is(dispatched.length, 16);
  assert.equal(wire, [
    'paused',
    'resumed',
    { jsonrpc: '2.0', id: 17, error: { code: 1003, message: SHUTDOWN.message, data: { name: 'SHUTTING_DOWN' } } },
  ]);
  for (let id = 1; id <= 16; id++) answer(`{"jsonrpc":"2.0","id":${id},"result":{}}`);
  await closed;
  assert.is(dispatched.length, 16);
  assert.equal(wire.at(-1), { close: 1001, reason: 'gateway shutting down' });
});

test('held frames run before a close are not refused with those after them, and none twice, even when a run closes the connection', async () => {
  const status = (id: number) => frame({ jsonrpc: '2.0', id, method: 'gateway.status' });
  const refusal = (id: number) => ({ jsonrpc: '2.0', id, error: { code: 1003, message: SHUTDOWN.message, data: { name: 'SHUTTING_DOWN' } } });
  for (const closedBy of ['another call', 'a held run'] as const) {
    const { connection, wire, dispatched, answer } = harness((text, connection) => {
      if (closedBy === 'a held run' && JSON.parse(text).id === 18) void connection.close(1001, 'gateway shutting down', SHUTDOWN);
    });
    for (let id = 1; id <= 20; id++) connection.receive(...status(id));
    for (let id = 1; id <= 3; id++) answer(`{"jsonrpc":"2.0","id":${id},"result":{}}`);
    await settle();
    const ran = closedBy === 'a held run' ? [16, 17, 18] : [16, 17, 18, 19];
    assert.equal(dispatched.map((text) => JSON.parse(text).id).slice(15), ran, closedBy);
    if (closedBy === 'another call') void connection.close(1001, 'gateway shutting down', SHUTDOWN);
    await settle();
    const refused = closedBy === 'a held run' ? [refusal(19), refusal(20)] : [refusal(20)];
    assert.equal(wire.filter((sent) => (sent as { error?: unknown }).error !== undefined), refused, closedBy);
  }
});

test('a connection holding frames is not taken for dead: its pongs wait unread behind them; once it reads again, a ping unanswered counts', async () => {
  const { connection, wire, answer } = harness();
  connection.heartbeat();
  for (let id = 1; id <= 17; id++) connection.receive(...frame({ jsonrpc: '2.0', id, method: 'gateway.status' }));
  connection.heartbeat();
  connection.heartbeat();
  assert.equal(wire, ['ping', 'paused'], 'the ping sent before the hold may be answered behind the held frames');
  answer('{"jsonrpc":"2.0","id":1,"result":{}}');
  await settle();
  connection.heartbeat();
  connection.heartbeat();
  assert.equal(wire.slice(2), [{ jsonrpc: '2.0', id: 1, result: {} }, 'resumed', 'ping', 'terminated']);
});

test('a heartbeat the gateway was too late to judge by (it stalled) only pings: an unanswered ping is judged at the next one', () => {
  const { connection, wire } = harness();
  connection.heartbeat();
  connection.heartbeat(false);
  assert.equal(wire, ['ping', 'ping']);
  connection.pong();
  connection.heartbeat();
  connection.heartbeat();
  assert.equal(wire.slice(2), ['ping', 'terminated']);
});

test('past answerHighWaterBytes waiting to be written, the connection reads no more requests until the socket drains; nothing is cut', async () => {
  const { connection, wire, answer, setUnsent, drain } = harness();
  const status = (id: number) => frame({ jsonrpc: '2.0', id, method: 'gateway.status' });
  for (const id of [1, 2, 3]) connection.receive(...status(id));
  setUnsent(4 << 20);
  answer('{"jsonrpc":"2.0","id":1,"result":{}}');
  await settle();
  assert.equal(wire, [{ jsonrpc: '2.0', id: 1, result: {} }], 'at the mark: reading on');
  setUnsent((4 << 20) + 1);
  answer('{"jsonrpc":"2.0","id":2,"result":{}}');
  answer('{"jsonrpc":"2.0","id":3,"result":{}}');
  await settle();
  assert.equal(wire.slice(1), [{ jsonrpc: '2.0', id: 2, result: {} }, 'paused', { jsonrpc: '2.0', id: 3, result: {} }], 'paused once');
  setUnsent(0, false);
  drain();
  assert.equal(wire.slice(4), ['resumed']);
});

test('frames that arrive while answers wait to drain (the rest of the chunk ws was reading) are held, not run, until the socket drains; then run in order', async () => {
  const { connection, wire, dispatched, answer, setUnsent, drain } = harness();
  const discover = (id: number) => frame({ jsonrpc: '2.0', id, method: 'rpc.discover' });
  connection.receive(...discover(1));
  setUnsent((4 << 20) + 1);
  answer('{"jsonrpc":"2.0","id":1,"result":{}}');
  await settle();
  assert.equal(wire.slice(1), ['paused']);
  for (const id of [2, 3, 4]) connection.receive(...discover(id));
  await settle();
  assert.is(dispatched.length, 1, 'none run while the answers wait: each would add its answer to them');
  setUnsent(0, false);
  drain();
  await settle();
  assert.equal(dispatched.map((text) => (JSON.parse(text) as { id: number }).id), [1, 2, 3, 4]);
  assert.equal(wire.slice(2), ['resumed']);
});

test('a connection waiting for its answers to drain is alive while bytes still leave its socket (a slow link); once none do, its pongs decide', async () => {
  const { connection, wire, answer, setUnsent, sent } = harness();
  connection.receive(...frame({ jsonrpc: '2.0', id: 1, method: 'gateway.status' }));
  setUnsent((4 << 20) + 1);
  answer('{"jsonrpc":"2.0","id":1,"result":{}}');
  await settle();
  assert.equal(wire.slice(1), ['paused']);
  for (let beat = 0; beat < 4; beat++) {
    sent(64 << 10);
    connection.heartbeat();
  }
  assert.equal(wire.slice(2), ['ping', 'ping', 'ping', 'ping'], 'never answered a ping it could not have read, yet reading');
  connection.heartbeat();
  assert.equal(wire.slice(6), ['terminated'], 'nothing left its socket since: its pongs decide');
});

test('pushes waiting behind a full send buffer hide the pongs too: alive while the network takes bytes from behind it (QA: an agent on a thin link was cut every minute)', () => {
  const { connection, wire, setUnsent, sent } = harness();
  setUnsent(256 << 10);
  connection.heartbeat();
  for (let beat = 0; beat < 3; beat++) {
    sent(16 << 10);
    connection.heartbeat();
  }
  assert.equal(wire, ['ping', 'ping', 'ping', 'ping'], 'slow, and reading');
  connection.heartbeat();
  assert.equal(wire.slice(4), ['terminated'], 'nothing taken since: its pongs decide');
});

test('bytes the network takes into a send buffer with room say nothing of the peer (a dead link takes them too); a frame from the peer does', () => {
  const { connection, wire, sent } = harness();
  connection.heartbeat();
  sent(16 << 10);
  connection.heartbeat();
  assert.equal(wire, ['ping', 'terminated']);

  const other = harness();
  other.connection.heartbeat();
  other.connection.receive(...frame({ jsonrpc: '2.0', method: 'session.ack', params: { sessionKey: 'main', seq: 1 } }));
  other.connection.heartbeat();
  other.connection.heartbeat();
  assert.equal(other.wire.filter((sent) => typeof sent === 'string'), ['ping', 'ping', 'terminated'], 'its pong is late, behind what it was sent; the ack says it is there');
});

test('a subscriber is cut as a slow consumer once more than maxBufferedBytes of pushes wait unsent', async () => {
  const { connection, wire, setUnsent } = harness();
  const push = (seq: number) => JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { seq } });
  setUnsent(1 << 20);
  assert.ok(connection.push(push(1)), 'at the limit: sent');
  await settle();
  setUnsent((1 << 20) + 1);
  assert.not.ok(connection.push(push(2)));
  // Then told, with what it left unsent: the gateway's log says who was cut and why.
  assert.equal(wire, [
    { jsonrpc: '2.0', method: 'session.event', params: { seq: 1 } },
    { close: 1008, reason: 'slow consumer' },
    { slowConsumer: 1, unsentBytes: (1 << 20) + 1 },
  ]);
});

test('answers to its own reads do not make a subscriber a slow consumer while they wait; once written, only pushes count', async () => {
  const { connection, wire, answer, setUnsent, written } = harness();
  const push = (seq: number) => JSON.stringify({ jsonrpc: '2.0', method: 'session.event', params: { seq } });
  const drained = `{"jsonrpc":"2.0","id":1,"result":{"events":"${'x'.repeat(2 << 20)}"}}`;
  connection.receive(...frame({ jsonrpc: '2.0', id: 1, method: 'session.drain', params: { sessionKey: 'main' } }));
  answer(drained, 2 << 20);
  await settle();
  // The drain's answer waits unsent, and a megabyte of pushes with it: the limit is not passed.
  setUnsent(Buffer.byteLength(drained) + (1 << 20));
  assert.ok(connection.push(push(1)));
  assert.is(connection.bufferedAmount, 1 << 20);
  await settle();
  // The answer is written; a byte more of pushes waits than the limit allows.
  written();
  setUnsent((1 << 20) + 1);
  assert.not.ok(connection.push(push(2)));
  assert.equal(wire.slice(1), [
    { jsonrpc: '2.0', method: 'session.event', params: { seq: 1 } },
    { close: 1008, reason: 'slow consumer' },
    { slowConsumer: 1, unsentBytes: (1 << 20) + 1 },
  ]);
});

test('a binary frame is read as UTF-8 JSON; one that is not UTF-8 is a parse error, never decoded with U+FFFD', async () => {
  const { connection, wire, dispatched } = harness();
  const text = '{"jsonrpc":"2.0","id":1,"method":"system.event","params":{"text":"a';
  connection.receive(Buffer.concat([Buffer.from(text), Buffer.from([0xff]), Buffer.from('b"}}')]), true);
  connection.receive(...raw(`${text}é"}}`, true));
  await settle();
  assert.equal(wire, [
    { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error: a binary frame must hold UTF-8 encoded JSON', data: { name: 'PARSE_ERROR' } } },
  ]);
  assert.equal(dispatched, [`${text}é"}}`]);
});

test('a connection closed without a refusal answers nothing new', async () => {
  const { connection, wire, dispatched } = harness();
  await connection.close(1008, 'slow consumer');
  connection.receive(...frame({ jsonrpc: '2.0', id: 1, method: 'gateway.status' }));
  await settle();
  assert.equal(wire, [{ close: 1008, reason: 'slow consumer' }]);
  assert.equal(dispatched, []);
});

test.run();
