/**
 * callOverHttp: what each way a POST /rpc can end becomes for the caller. Servers here are raw
 * TCP, answering as the gateway, a proxy in front of it, or something else entirely would.
 */
import type net from 'node:net';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ConnectionError, RpcCallError, type ConnectionFailure } from '../../src/client/errors.js';
import { callOverHttp, type HttpCallOptions } from '../../src/client/http.js';
import { MAX_CLIENT_FRAME_BYTES } from '../../src/protocol/constants.js';
import { busySocketGateway } from '../helpers/busy-socket.js';
import { fakeServer, type FakeServer } from '../helpers/fake-server.js';

const test = suite('client/http');

const servers: FakeServer[] = [];
test.after.each(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

/** A gateway URL (ws://) whose server answers every request with `answer`. */
async function gatewayAnswering(answer: (socket: net.Socket) => void): Promise<{ url: string; server: FakeServer }> {
  const server = await fakeServer(answer);
  servers.push(server);
  return { url: `ws://${server.url.host}`, server };
}

const json = (status: string, body: unknown) => (socket: net.Socket) => {
  const text = JSON.stringify(body);
  socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
};

/** A gateway.status result, as a gateway answers it. */
const STATUS = {
  version: 'x',
  startedAt: '2026-11-25T16:00:00.000Z',
  uptimeMs: 5,
  dataDir: null,
  sessions: 0,
  pending: 0,
  connections: 0,
  maxPendingPerSession: 1000,
  eventsDroppedAtCap: 0,
  freeDiskBytes: null,
  minFreeDiskBytes: 67_108_864,
  newEventsRefused: false,
  writesFailingSince: null,
  writeFailure: null,
};

const call = (url: string, extra: { timeoutMs?: number; signal?: AbortSignal } = {}) =>
  callOverHttp({ url, token: 'sbt_test', ...extra }, 'gateway.status', {});

async function connectionFailure(promise: Promise<unknown>, failure: ConnectionFailure, message: RegExp | string): Promise<ConnectionError> {
  const outcome = await promise.then(() => 'answered', (error: unknown) => error);
  assert.instance(outcome, ConnectionError);
  assert.is((outcome as ConnectionError).failure, failure);
  assert.match((outcome as Error).message, message);
  return outcome as ConnectionError;
}

/** The innermost cause of an error: what the exchange was stopped with. */
function rootCause(error: Error): unknown {
  let cause: unknown = error;
  while (cause instanceof Error && 'cause' in cause) cause = cause.cause;
  return cause;
}

test('a result comes back as it was answered; the request is a JSON-RPC call to /rpc with the token', async () => {
  const { url, server } = await gatewayAnswering(json('200 OK', { jsonrpc: '2.0', id: 1, result: STATUS }));
  assert.equal(await call(url), STATUS);
  const request = server.requests[0]!;
  assert.match(request, /^POST \/rpc HTTP\/1\.1\r\n/);
  assert.match(request, '\r\nauthorization: Bearer sbt_test\r\n');
  assert.ok(request.endsWith('\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"gateway.status","params":{}}'));
});

test("a path in the URL is a prefix (a reverse proxy's), kept before /rpc with the query; a fragment is refused, never dropped", async () => {
  const { server } = await gatewayAnswering(json('200 OK', { jsonrpc: '2.0', id: 1, result: STATUS }));
  const base = `ws://${server.url.host}`;
  for (const [url, target] of [
    [`${base}/switchboard`, '/switchboard/rpc'],
    [`${base}/switchboard/`, '/switchboard/rpc'],
    [`${base}/a/b?x=1`, '/a/b/rpc?x=1'],
    [`${base}/?x=1`, '/rpc?x=1'],
  ] as const) {
    await call(url);
    assert.match(server.requests.at(-1)!, new RegExp(`^POST ${target.replace(/[?]/g, '\\?')} HTTP/1\\.1\r\n`), url);
  }
  await connectionFailure(
    call(`${base}/switchboard#main`),
    'unreachable',
    `invalid gateway URL "${base}/switchboard#main": remove its fragment ("#main"), which is never sent to a gateway`,
  );
  assert.is(server.requests.length, 4, 'nothing was sent for the URL with a fragment');
});

test('a user name or password in the URL, a credential in its query, a timeoutMs no timer holds, or a token no header carries, is refused before anything is sent', async () => {
  const { server } = await gatewayAnswering(json('200 OK', { jsonrpc: '2.0', id: 1, result: STATUS }));
  await connectionFailure(
    call(`ws://main:sbt_secret@${server.url.host}`),
    'unreachable',
    `invalid gateway URL "ws://***@${server.url.host}": remove its user name and password, which are never sent: the token goes in the Authorization header`,
  );
  await connectionFailure(
    call(`ws://${server.url.host}/?token=sbt_secret`),
    'unreachable',
    `invalid gateway URL "ws://${server.url.host}/?***": remove the credential from its query (URLs end up in logs, and the gateway refuses such a request): the token goes in the Authorization header`,
  );
  for (const timeoutMs of [2 ** 31, Number.POSITIVE_INFINITY, 0]) {
    const error = await call(`ws://${server.url.host}`, { timeoutMs }).catch((e: unknown) => e);
    assert.instance(error, RangeError);
    assert.match((error as Error).message, `timeoutMs must be a number of milliseconds from 1 to 2147483647`);
  }
  const badToken = await callOverHttp({ url: `ws://${server.url.host}`, token: 'sba_abc\r\nsba_def' }, 'gateway.status', {}).catch((e: unknown) => e);
  assert.instance(badToken, TypeError);
  assert.is((badToken as Error).message, 'token holds a line break: a switchboard token is one line of visible characters, sent alone');
  // From plain JavaScript, where the types do not reach: the missing URL is named.
  const noUrl = await callOverHttp({ token: 'sba_abc' } as unknown as HttpCallOptions, 'gateway.status', {}).catch((e: unknown) => e);
  assert.instance(noUrl, TypeError);
  assert.is((noUrl as Error).message, "callOverHttp: options.url is required (the gateway's URL, e.g. localGatewayUrl()), got undefined");
  assert.is(server.requests.length, 0);
});

test('a chunked answer (a proxy re-encoding it) reads the same', async () => {
  const text = JSON.stringify({ jsonrpc: '2.0', id: 1, result: STATUS });
  const { url } = await gatewayAnswering((socket) =>
    socket.end(`HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n${(10).toString(16)}\r\n${text.slice(0, 10)}\r\n${(text.length - 10).toString(16)}\r\n${text.slice(10)}\r\n0\r\n\r\n`),
  );
  assert.equal(await call(url), STATUS);
});

test('a JSON-RPC error is an RpcCallError with its code, name and data', async () => {
  const error = { code: 1013, message: 'slow down', data: { name: 'RATE_LIMITED', retryAfterMs: 5 } };
  const { url } = await gatewayAnswering(json('200 OK', { jsonrpc: '2.0', id: 1, error }));
  const outcome = await call(url).then(() => 'answered', (thrown: unknown) => thrown);
  assert.instance(outcome, RpcCallError);
  assert.equal([(outcome as RpcCallError).code, (outcome as RpcCallError).errorName, (outcome as RpcCallError).data], [1013, 'RATE_LIMITED', error.data]);
});

test('HTTP refusals: 401 is unauthorized; others are rejected with what the gateway or proxy said', async () => {
  const refused = await gatewayAnswering(json('401 Unauthorized', { jsonrpc: '2.0', id: null, error: { code: 1012, message: 'no' } }));
  await connectionFailure(call(refused.url), 'unauthorized', 'refused the token (HTTP 401)');
  const shuttingDown = await gatewayAnswering(
    json('503 Service Unavailable', { jsonrpc: '2.0', id: null, error: { code: 1003, message: 'the gateway is shutting down', data: { name: 'SHUTTING_DOWN' } } }),
  );
  await connectionFailure(call(shuttingDown.url), 'rejected', '(HTTP 503: the gateway is shutting down (SHUTTING_DOWN 1003))');
  // What to tell apart without reading the message: the status, and the gateway's code and name.
  const refusal = await call(shuttingDown.url).catch((error: ConnectionError) => error.refusal);
  assert.equal(refusal, { status: 503, code: 1003, errorName: 'SHUTTING_DOWN', retryAfterSeconds: undefined });
  // The name is the gateway's table's, as an RpcCallError's: a code not in it names nothing, whatever its body says.
  const other = await gatewayAnswering(json('503 Service Unavailable', { error: { code: 4242, message: 'busy', data: { name: 'SHUTTING_DOWN' } } }));
  assert.equal(await call(other.url).catch((error: ConnectionError) => error.refusal), { status: 503, code: 4242, errorName: undefined, retryAfterSeconds: undefined });
  const proxy = await gatewayAnswering((socket) => socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n<h1>upstream down</h1>\n'));
  await connectionFailure(call(proxy.url), 'rejected', '(HTTP 502: <h1>upstream down</h1>)');
  assert.equal(await call(proxy.url).catch((error: ConnectionError) => error.refusal), { status: 502, code: undefined, errorName: undefined, retryAfterSeconds: undefined });
  // Retry-After in either of its forms (RFC 9110 section 10.2.3), counted in seconds from now.
  for (const [retryAfter, seconds] of [['120', 120], [new Date(Date.now() + 30_500).toUTCString(), 30], ['soon', undefined], ['1.5', undefined], ['-1', undefined]] as const) {
    const limited = await gatewayAnswering((socket) => socket.end(`HTTP/1.1 429 Too Many Requests\r\nretry-after: ${retryAfter}\r\ncontent-length: 0\r\n\r\n`));
    const refused = await call(limited.url).then(() => undefined, (error: ConnectionError) => error.refusal);
    assert.ok(seconds === undefined ? refused!.retryAfterSeconds === undefined : Math.abs(refused!.retryAfterSeconds! - seconds) <= 1, `${retryAfter}: ${refused?.retryAfterSeconds}`);
  }
  // A web server's whole error page comes down to one line of at most 200 characters.
  const page = `<!DOCTYPE html>\n<html>\n  <body>\n${'    <p>not found</p>\n'.repeat(40)}  </body>\n</html>\n`;
  const server = await gatewayAnswering((socket) => socket.end(`HTTP/1.1 404 Not Found\r\ncontent-length: ${page.length}\r\n\r\n${page}`));
  const shown = `<!DOCTYPE html> <html> <body> ${'<p>not found</p> '.repeat(40)}`.slice(0, 200);
  await connectionFailure(call(server.url), 'rejected', `(HTTP 404: ${shown}…)`);
});

test('not a gateway: a 200 that is not JSON, a body past MAX_CLIENT_FRAME_BYTES, or bytes that are not HTTP, are rejected', async () => {
  const html = await gatewayAnswering((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n<html>'));
  await connectionFailure(call(html.url), 'rejected', 'is not JSON: is it a switchboard gateway?');
  const huge = await gatewayAnswering((socket) => socket.end(`HTTP/1.1 200 OK\r\ncontent-length: ${MAX_CLIENT_FRAME_BYTES + 1}\r\n\r\n{`));
  await connectionFailure(call(huge.url), 'rejected', `is larger than any gateway answer (${MAX_CLIENT_FRAME_BYTES} bytes): is it a switchboard gateway?`);
  const smtp = await gatewayAnswering((socket) => socket.end('220 mail ESMTP\r\n'));
  await connectionFailure(call(smtp.url), 'rejected', /is not an HTTP\/1\.x response: expected an HTTP\/1\.x status line, got "220 mail ESMTP": is it a switchboard gateway\?$/);
});

test("an answer that is not of the method's shape is rejected, naming where it departs; a member or value added by a newer gateway is read", async () => {
  const answering = async (body: unknown) => (await gatewayAnswering(json('200 OK', body))).url;
  const notOurs = ": another service, or a gateway of a version this client cannot read";
  for (const [body, problem] of [
    [{ jsonrpc: '2.0', id: 1, result: {} }, 'result lacks "version"'],
    [{ jsonrpc: '2.0', id: 1, result: null }, 'result must be an object'],
    [{ jsonrpc: '2.0', id: 1, result: { ...STATUS, uptimeMs: 1.5 } }, 'result/uptimeMs must be an integer'],
    [{ jsonrpc: '2.0', id: 1, result: { ...STATUS, dataDir: 7 } }, 'result/dataDir must be a string or null'],
    [{ jsonrpc: '2.0', id: 1 }, 'it holds neither a result nor an error'],
    [{ jsonrpc: '2.0', id: 1, error: 'boom' }, 'its error is not a JSON-RPC error object (an integer code and a message)'],
    [{ jsonrpc: '2.0', id: 1, error: { code: '1013', message: 'x' } }, 'its error is not a JSON-RPC error object (an integer code and a message)'],
    [null, 'it is not a JSON-RPC response object'],
    [[{ jsonrpc: '2.0', id: 1, result: STATUS }], 'it is not a JSON-RPC response object'],
  ] as const) {
    const url = await answering(body);
    await connectionFailure(call(url), 'rejected', `the answer to gateway.status from ${url} cannot be read as a switchboard gateway's (${problem})${notOurs}`);
  }
  const newer = { ...STATUS, uptimeMs: 7, replicas: 3 };
  assert.equal(await call(await answering({ jsonrpc: '2.0', id: 1, result: newer })), newer);
  // The nested shape: a list's items, a record's values, and an enum read as its type only.
  const trace = { eventId: 'e1', omitted: 0, steps: [{ step: 'archived', at: STATUS.startedAt, detail: { n: 1, ok: true, why: null } }] };
  const traceCall = (url: string) => callOverHttp({ url, token: 'sbt_test' }, 'event.trace', { eventId: 'e1' });
  assert.equal(await traceCall(await answering({ jsonrpc: '2.0', id: 1, result: trace })), trace);
  const badDetail = { ...trace, steps: [{ ...trace.steps[0], detail: { n: [1] } }] };
  const url = await answering({ jsonrpc: '2.0', id: 1, result: badDetail });
  await connectionFailure(traceCall(url), 'rejected', "(result/steps/0/detail/n must be a string, a number, a boolean or null)");
});

test('no answer: timeout after timeoutMs, aborted by the caller, unreachable, or closed mid-answer', async () => {
  const silent = await gatewayAnswering(() => undefined);
  const timedOut = await connectionFailure(call(silent.url, { timeoutMs: 50 }), 'timeout', `no answer to gateway.status from ${silent.url} within 50 ms`);
  const timeout = rootCause(timedOut);
  assert.equal([timeout instanceof DOMException, (timeout as DOMException).name, (timeout as DOMException).message], [true, 'TimeoutError', 'no answer within 50 ms']);
  const controller = new AbortController();
  const reason = new Error('the panel closed');
  setTimeout(() => controller.abort(reason), 20);
  const aborted = await connectionFailure(call(silent.url, { signal: controller.signal }), 'aborted', 'gateway.status was aborted by the caller');
  assert.is(rootCause(aborted), reason, "the caller's reason, at the end of the causes");
  const before = await connectionFailure(call(silent.url, { signal: AbortSignal.abort(reason) }), 'aborted', 'gateway.status was aborted by the caller');
  assert.is(rootCause(before), reason, 'aborted before the call');

  const gone = await fakeServer(() => undefined);
  await gone.close();
  await connectionFailure(call(`ws://${gone.url.host}`), 'unreachable', `gateway not reachable at ws://${gone.url.host} (ECONNREFUSED)`);

  const cut = await gatewayAnswering((socket) => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n{"jsonrpc"'));
  await connectionFailure(call(cut.url), 'closed', 'broke before the answer was complete');
});

test('a Unix socket that refuses a connect with EAGAIN (its backlog full: a busy gateway) is tried again until it accepts (QA: calls failed at once as unreachable)', async () => {
  if (process.platform !== 'linux') return;
  const gateway = await busySocketGateway(500, JSON.stringify({ jsonrpc: '2.0', id: 1, result: STATUS }));
  try {
    assert.is(await gateway.fill(), 'EAGAIN', 'the backlog is full');
    assert.equal(await call(gateway.url, { timeoutMs: 5000 }), STATUS);
  } finally {
    gateway.stop();
  }
  // Still refused when the timeout comes: unreachable, as nothing was sent, not a timeout, which may have done it.
  const stuck = await busySocketGateway(3000, '{}');
  try {
    await stuck.fill();
    await connectionFailure(call(stuck.url, { timeoutMs: 300 }), 'unreachable', `gateway not reachable at ${stuck.url} (EAGAIN)`);
  } finally {
    stuck.stop();
  }
});

test.run();
