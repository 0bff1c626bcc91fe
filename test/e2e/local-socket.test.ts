/**
 * The gateway's Unix socket in its data dir: what the CLI calls when it is given no URL. The
 * admin token the CLI reads from a data dir must reach only the gateway of that data dir, never
 * whatever holds a TCP port (a local user can listen on 18790 while the gateway is down).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { callOverHttp, connect, DEFAULT_URL, localGatewayToken, localGatewayUrl, TokenFileError, type StoredEvent } from '../../src/index.js';
import { ENV } from '../../src/protocol/constants.js';
import { MAX_SOCKET_PATH_BYTES } from '../../src/protocol/socket-path.js';
import { startGateway } from '../../src/server/gateway.js';
import { cleanup, makeTempDir, runCli, sleep, spawnCli, startGatewayProcess, startInProcessGateway, waitUntil } from '../helpers/gateway.js';

const test = suite('e2e: the gateway\'s Unix socket in its data dir');

test.after(async () => {
  await cleanup();
});

const socketOf = (dataDir: string) => path.join(dataDir, 'gateway.sock');

/**
 * The tests that listen on the default port in another local user's place, to see that nothing is
 * sent there, need it free: skipped, not passed, where a gateway of the developer's holds it.
 */
const squatterTest = (await listenOnDefaultPort().then((probe) => (probe?.close(), probe !== undefined))) ? test : test.skip;

interface TraceStep {
  step: string;
  detail: { remoteAddress?: string };
}

test('the CLI given no URL calls the gateway of its data dir over its socket, whatever port it listens on; shutdown removes it', async () => {
  // --port 0: not the port a URL-less call would try over TCP.
  const gw = await startGatewayProcess();
  const socket = socketOf(gw.dataDir);
  const stat = fs.statSync(socket);
  assert.ok(stat.isSocket());
  assert.is(stat.mode & 0o777, 0o600);
  assert.ok(gw.stdout().endsWith(`, socket ${socket})\n`), `the listening line names it: ${gw.stdout()}`);

  const sent = await runCli(['system', 'event', '--text', 'over the socket', '--json', '--data-dir', gw.dataDir]);
  assert.is(sent.code, 0, sent.stderr);
  const { eventId } = JSON.parse(sent.stdout) as { eventId: string };
  const trace = await runCli(['trace', eventId, '--json', '--data-dir', gw.dataDir]);
  assert.is(trace.code, 0, trace.stderr);
  const accepted = (JSON.parse(trace.stdout) as { steps: TraceStep[] }).steps.find((step) => step.step === 'accepted');
  assert.is(accepted?.detail.remoteAddress, 'unix socket');

  assert.is(await gw.stop('SIGTERM'), 0);
  assert.not.ok(fs.existsSync(socket), 'the socket file is removed at shutdown');
});

test('a token refused beside a data dir names the setting that overruled it: SWITCHBOARD_TOKEN, or SWITCHBOARD_URL (which a --data-dir given beats)', async () => {
  const gw = await startGatewayProcess();
  const other = await startGatewayProcess();
  const byToken = await runCli(['status', '--data-dir', gw.dataDir], { env: { SWITCHBOARD_TOKEN: other.token } });
  assert.is(
    byToken.stderr,
    `switchboard: the gateway at unix:${socketOf(gw.dataDir)} refused the token: the token in SWITCHBOARD_TOKEN is not this gateway's: set it to this gateway's token, or unset it to use the token file of the gateway's data dir (--data-dir)\n`,
  );
  const otherUrl = `unix:${socketOf(other.dataDir)}`;
  const byUrl = await runCli(['status'], { env: { SWITCHBOARD_URL: otherUrl, SWITCHBOARD_DATA_DIR: gw.dataDir } });
  assert.is(
    byUrl.stderr,
    `switchboard: the gateway at ${otherUrl} refused the token: ${path.join(gw.dataDir, 'token')} is not this gateway's token (the URL is from SWITCHBOARD_URL: unset it to call the data dir's own gateway): give --data-dir the gateway's data dir, or pass its token in SWITCHBOARD_TOKEN (or --token)\n`,
  );
  assert.is((await runCli(['status', '--data-dir', gw.dataDir], { env: { SWITCHBOARD_TOKEN: gw.token } })).code, 0);
  assert.is((await runCli(['status', '--data-dir', gw.dataDir], { env: { SWITCHBOARD_URL: otherUrl } })).code, 0);
  // The data dir's own socket, and its token file changed under the running gateway: it is that
  // gateway, which read the file at start, and sending another data dir is no fix (operator QA).
  const file = path.join(gw.dataDir, 'token');
  fs.writeFileSync(file, `${other.token}\n`);
  const changed = await runCli(['status', '--data-dir', gw.dataDir]);
  assert.is(changed.code, 3);
  assert.is(
    changed.stderr,
    `switchboard: the gateway at unix:${socketOf(gw.dataDir)} refused the token: ${file} is not the token its gateway started with: the file was changed since (the gateway reads it at start only): restart the gateway to take it, or put back the token it holds\n`,
  );
});

test('session watch given no URL subscribes over the socket (a WebSocket on it): the backlog, then events pushed', async () => {
  const gw = await startGatewayProcess();
  const publish = async (text: string) => {
    const sent = await runCli(['system', 'event', '--text', text, '--data-dir', gw.dataDir]);
    assert.is(sent.code, 0, sent.stderr);
  };
  await publish('stored before');
  const watch = spawnCli(['session', 'watch', '--session-key', 'agent:main:main', '--json', '--data-dir', gw.dataDir]);
  try {
    // Printed once replayed: the subscription is live from then on.
    await watch.waitForLines(1);
    await publish('pushed over the socket');
    const lines = await watch.waitForLines(2);
    assert.equal(
      lines.map((line) => (JSON.parse(line) as StoredEvent).text),
      ['stored before', 'pushed over the socket'],
    );
  } finally {
    await watch.stop('SIGINT');
  }
});

test('the client library takes a unix: URL, for calls over HTTP and for a WebSocket', async () => {
  const gw = await startInProcessGateway();
  const url = `unix:${socketOf(gw.dataDir)}`;
  assert.is(gw.gateway.socketPath, socketOf(gw.dataDir));
  const routed = await callOverHttp({ url, token: gw.token }, 'system.event', { text: 'posted', sessionKey: 'agent:lib:main' });
  assert.is(routed.queue.seq, 1);
  const client = await connect({ url, token: gw.token });
  try {
    const seen: string[] = [];
    await client.subscribe({ sessionKey: 'agent:lib:main' }, { onEvent: (event) => void seen.push(event.text) });
    await waitUntil(() => seen.length === 1, 'the backlog to be replayed');
    assert.equal(seen, ['posted']);
  } finally {
    client.close();
  }
});

test('a unix: URL must be an absolute path that fits a socket address', async () => {
  const long = `/${'d'.repeat(MAX_SOCKET_PATH_BYTES)}`;
  const cases = [
    ['unix:gateway.sock', 'expected unix:/absolute/path/to/gateway.sock'],
    [`unix:${long}`, `a Unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes`],
  ] as const;
  for (const [url, problem] of cases) {
    const error = await callOverHttp({ url, token: 'sba_x' }, 'gateway.status', {}).catch((e: unknown) => e as Error);
    assert.is((error as Error).message, `invalid gateway URL ${JSON.stringify(url)}: ${problem}`);
    const cli = await runCli(['status', '--url', url, '--token', 'sba_x']);
    assert.is(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, problem);
  }
});

squatterTest('with the gateway down, the CLI sends the data dir\'s admin token nowhere: not to whatever holds the default port', async () => {
  const gw = await startGatewayProcess();
  assert.is(await gw.stop('SIGTERM'), 0);
  // A local user's listener on the default port, where the token would have gone over TCP.
  const squatter = (await listenOnDefaultPort())!;
  try {
    const sent = await runCli(['system', 'event', '--text', 'nobody home', '--data-dir', gw.dataDir]);
    assert.is(sent.code, 3, sent.stderr);
    assert.is(
      sent.stderr,
      `switchboard: gateway not reachable at unix:${socketOf(gw.dataDir)} (ENOENT): no gateway runs with the data dir ${gw.dataDir}: start one (\`switchboard gateway\`), or give --data-dir the running gateway's, or drop --data-dir and give its URL (--url / SWITCHBOARD_URL; ws://127.0.0.1:18790 on the default port) and its token (SWITCHBOARD_TOKEN)\n`,
    );
    assert.is(squatter.connections, 0, 'nothing connected to the default port');
  } finally {
    squatter.close();
  }
});

squatterTest('a token given without a URL goes over the socket too, and nowhere else when there is none', async () => {
  const gw = await startGatewayProcess();
  for (const [args, env] of [[['--token', gw.token], {}], [[], { SWITCHBOARD_TOKEN: gw.token }]] as const) {
    const sent = await runCli(['status', ...args, '--data-dir', gw.dataDir], { env });
    assert.is(sent.code, 0, sent.stderr);
  }
  const empty = makeTempDir();
  const squatter = (await listenOnDefaultPort())!;
  try {
    const refused = await runCli(['status', '--data-dir', empty], { env: { SWITCHBOARD_TOKEN: gw.token } });
    assert.is(refused.code, 3);
    assert.match(refused.stderr, `gateway not reachable at unix:${socketOf(empty)} (ENOENT)`);
    assert.is(squatter.connections, 0, 'nothing connected to the default port');
  } finally {
    squatter.close();
  }
});

test('a socket left by a gateway killed with SIGKILL is replaced by the next one', async () => {
  const first = await startGatewayProcess();
  await first.kill9();
  assert.ok(fs.statSync(socketOf(first.dataDir)).isSocket(), 'SIGKILL leaves the socket file');
  const second = await startGatewayProcess({ dataDir: first.dataDir });
  assert.not.match(second.stderr(), /warning/);
  const sent = await runCli(['system', 'event', '--text', 'after the crash', '--data-dir', first.dataDir]);
  assert.is(sent.code, 0, sent.stderr);
});

test('a file in the way of the socket is left alone: the gateway warns, and serves TCP', async () => {
  const dataDir = makeTempDir();
  fs.writeFileSync(socketOf(dataDir), 'mine');
  const gw = await startGatewayProcess({ dataDir });
  await waitUntil(() => gw.stderr().includes('started: '), 'the warning, and the line that the start is done');
  assert.is(
    gw.stderr().replace(/started: .*\n/, 'started: ...\n'),
    `switchboard gateway: wrote a new admin token to ${path.join(dataDir, 'token')} (no token file was there): clients of this data dir read it there; others need it given\n` +
      `switchboard gateway: warning: no Unix socket in the data dir (${socketOf(dataDir)} is in the way and is not a socket: remove it): the CLI reaches this gateway only when given its URL (--url or SWITCHBOARD_URL) and its token (SWITCHBOARD_TOKEN)\n` +
      'switchboard gateway: started: ...\n',
  );
  assert.is(fs.readFileSync(socketOf(dataDir), 'utf8'), 'mine');
  const sent = await runCli(['status', '--url', gw.url], { env: { SWITCHBOARD_TOKEN: gw.token } });
  assert.is(sent.code, 0, sent.stderr);
});

test('a socketPath a live server answers on is left to it: the gateway warns and runs without a socket', async () => {
  const other = path.join(makeTempDir(), 'other.sock');
  // The gateway's probe connects and hangs up at once: its reset is no failure of this server.
  const server = net.createServer((connection) => connection.on('error', () => {}).end('still mine'));
  await new Promise<void>((resolve) => server.listen(other, resolve));
  const log: string[] = [];
  const gateway = await startGateway({ dataDir: makeTempDir(), port: 0, socketPath: other, log: (line) => log.push(line) });
  try {
    assert.is(gateway.socketPath, undefined);
    assert.match(log.join('\n'), `no Unix socket in the data dir (a server already listens on ${other})`);
    const answer = await new Promise<string>((resolve) => net.connect({ path: other }).on('data', (data) => resolve(String(data))));
    assert.is(answer, 'still mine');
  } finally {
    await gateway.close();
    server.close();
  }
});

test('a data dir whose socket path is too long for a socket address gets none, and a warning, not a socket cut short', async () => {
  const base = makeTempDir();
  const dataDir = path.join(base, 'd'.repeat(Math.max(1, MAX_SOCKET_PATH_BYTES - base.length - 'gateway.sock'.length)));
  assert.ok(Buffer.byteLength(socketOf(dataDir)) > MAX_SOCKET_PATH_BYTES);
  const log: string[] = [];
  const gateway = await startGateway({ dataDir, port: 0, log: (line) => log.push(line) });
  try {
    assert.is(gateway.socketPath, undefined);
    assert.match(log.join('\n'), `no Unix socket in the data dir (${socketOf(dataDir)}: a Unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes)`);
    assert.equal(fs.readdirSync(dataDir).filter((name) => name.startsWith('gateway')), [], 'no socket bound at the path cut short');
  } finally {
    await gateway.close();
  }
});

squatterTest('a data dir too long for a socket: the CLI sends its admin token nowhere, not to whatever holds the default port', async () => {
  const base = makeTempDir();
  const dataDir = path.join(base, 'd'.repeat(Math.max(1, MAX_SOCKET_PATH_BYTES - base.length - 'gateway.sock'.length)));
  const gw = await startGatewayProcess({ dataDir });
  assert.is(await gw.stop('SIGTERM'), 0);
  const squatter = (await listenOnDefaultPort())!;
  try {
    const sent = await runCli(['system', 'event', '--text', 'nobody home', '--json', '--data-dir', dataDir]);
    assert.is(sent.code, 3, sent.stderr);
    assert.is(
      sent.stderr,
      `switchboard: the data dir ${dataDir} cannot hold the gateway's Unix socket (${socketOf(dataDir)}: a Unix socket path has at most ${MAX_SOCKET_PATH_BYTES} bytes), so its gateway serves none, and the token is not sent over TCP instead: use a data dir with a shorter path, or give the gateway's URL (--url / SWITCHBOARD_URL) and its token (SWITCHBOARD_TOKEN)\n`,
    );
    assert.is((JSON.parse(sent.stdout) as { error: { data: { name: string } } }).error.data.name, 'GATEWAY_UNREACHABLE');
    assert.is(squatter.connections, 0, 'nothing connected to the default port');
    // Asked for, with its token, TCP serves such a gateway.
    const again = await startGatewayProcess({ dataDir });
    const viaUrl = await runCli(['status', '--url', again.url], { env: { SWITCHBOARD_TOKEN: again.token } });
    assert.is(viaUrl.code, 0, viaUrl.stderr);
  } finally {
    squatter.close();
  }
});

test('a file at the socket\'s path that is not a socket is not sent the data dir\'s admin token', async () => {
  const gw = await startGatewayProcess();
  assert.is(await gw.stop('SIGTERM'), 0);
  const socket = socketOf(gw.dataDir);
  fs.writeFileSync(socket, 'mine');
  const notSocket = await runCli(['status', '--json', '--data-dir', gw.dataDir]);
  assert.is(notSocket.code, 3, notSocket.stderr);
  assert.is(
    notSocket.stderr,
    `switchboard: ${socket} is not a socket, so no gateway serves it: move it out of the way, and restart the gateway to have it make its socket there\n`,
  );
  // Named by --url, another file is a mistyped URL, to be corrected rather than removed.
  const dataDir = await runCli(['status', '--url', `unix:${gw.dataDir}`, '--data-dir', gw.dataDir]);
  assert.is(dataDir.code, 3, dataDir.stderr);
  assert.is(
    dataDir.stderr,
    `switchboard: ${gw.dataDir} is not a socket, so no gateway serves it: a gateway's socket is gateway.sock in its data dir; the gateway of the data dir ${gw.dataDir} serves unix:${socket}\n`,
  );
  const tokenFile = path.join(gw.dataDir, 'token');
  const token = await runCli(['status', '--url', `unix:${tokenFile}`, '--data-dir', gw.dataDir]);
  assert.is(token.stderr, `switchboard: ${tokenFile} is not a socket, so no gateway serves it: a gateway's socket is gateway.sock in its data dir\n`);
  assert.ok(fs.existsSync(tokenFile));
});

// Only root can make a socket that belongs to another user: skipped, not passed, for any other.
const asRoot = process.getuid?.() === 0 ? test : test.skip;

asRoot('another user\'s socket at the socket\'s path (as one could put in a data dir shared with a group) is not sent the data dir\'s admin token', async () => {
  const gw = await startGatewayProcess();
  assert.is(await gw.stop('SIGTERM'), 0);
  const socket = socketOf(gw.dataDir);
  const status = () => runCli(['status', '--json', '--data-dir', gw.dataDir]);
  const planted = net.createServer((connection) => connection.destroy());
  let connections = 0;
  planted.on('connection', () => connections++);
  await new Promise<void>((resolve) => planted.listen(socket, resolve));
  try {
    fs.chownSync(socket, 65534, 65534);
    const foreign = await status();
    assert.is(foreign.code, 3, foreign.stderr);
    assert.match(foreign.stderr, `${socket} belongs to uid 65534, not to uid 0, the owner of ${gw.dataDir}: another user may have put it there`);
    assert.is((JSON.parse(foreign.stdout) as { error: { data: { name: string } } }).error.data.name, 'GATEWAY_REJECTED');
    assert.is(connections, 0, 'nothing connected to the planted socket');
  } finally {
    planted.close();
  }
});

asRoot('a socket the user may not open, given as a unix: URL, is said to be another user\'s, not a gateway that may not run (operator QA: "is switchboard gateway running there?")', async () => {
  const gw = await startGatewayProcess();
  const url = `unix:${socketOf(gw.dataDir)}`;
  // The data dir is 0700, root's: the CLI run as nobody cannot reach the socket in it.
  const denied = await runCli(['status', '--url', url], { uid: 65534, env: { HOME: makeTempDir(), [ENV.token]: localGatewayToken(gw.dataDir) } });
  assert.equal(
    [denied.code, denied.stderr],
    [3, `switchboard: gateway not reachable at ${url} (EACCES): permission denied: the socket, or a directory above it, is another user's: run this as the user the gateway runs as, or give its ws:// URL\n`],
  );
});

asRoot('a data dir of another user\'s gets no socket, and a warning, not one its clients would refuse (operator QA: the gateway named a socket its CLI refused)', async () => {
  const dataDir = makeTempDir();
  fs.chownSync(dataDir, 65534, 65534);
  const log: string[] = [];
  const gateway = await startGateway({ dataDir, port: 0, log: (line) => log.push(line) });
  try {
    assert.is(gateway.socketPath, undefined);
    assert.match(log.join('\n'), `no Unix socket in the data dir (${dataDir} belongs to uid 65534, not to this gateway's uid 0, and clients refuse a socket there that is not its owner's)`);
    assert.not.ok(fs.existsSync(socketOf(dataDir)));
  } finally {
    await gateway.close();
  }
});

asRoot('a client reconnecting over the socket checks it again: another user\'s socket in its place is not sent the token', async () => {
  const gw = await startGatewayProcess();
  const url = localGatewayUrl(gw.dataDir);
  const client = await connect({ url, token: localGatewayToken(gw.dataDir), reconnect: { initialDelayMs: 10, maxDelayMs: 20 } });
  const planted = net.createServer((connection) => connection.destroy());
  let connections = 0;
  planted.on('connection', () => connections++);
  try {
    assert.is(await gw.stop('SIGTERM'), 0);
    await new Promise<void>((resolve) => planted.listen(socketOf(gw.dataDir), resolve));
    fs.chownSync(socketOf(gw.dataDir), 65534, 65534);
    // Reconnect attempts every 10-20 ms: a quarter second is a dozen of them.
    await sleep(250);
    assert.is(connections, 0, 'no reconnect went to the planted socket');
    await new Promise<void>((resolve) => planted.close(() => resolve()));
    fs.rmSync(socketOf(gw.dataDir), { force: true });
    await startGatewayProcess({ dataDir: gw.dataDir });
    await waitUntil(async () => (await client.status().then(() => true, () => false)), 'the client to reconnect to the gateway');
  } finally {
    client.close();
    planted.close();
  }
});

test('connect() given no URL goes to the socket of the default data dir, not to the default port', async () => {
  const home = makeTempDir();
  const saved = process.env['XDG_DATA_HOME'];
  process.env['XDG_DATA_HOME'] = home;
  try {
    const gw = await startInProcessGateway({ dataDir: path.join(home, 'switchboard') });
    const client = await connect({ token: gw.token });
    try {
      assert.is(client.url, `unix:${socketOf(gw.dataDir)}`);
      assert.is((await client.status()).dataDir, gw.dataDir);
    } finally {
      client.close();
    }
  } finally {
    if (saved === undefined) delete process.env['XDG_DATA_HOME'];
    else process.env['XDG_DATA_HOME'] = saved;
  }
});

test('localGatewayUrl and localGatewayToken name the data dir\'s socket and read its token', async () => {
  const gw = await startGatewayProcess();
  assert.is(localGatewayUrl(gw.dataDir), `unix:${socketOf(gw.dataDir)}`);
  assert.is(localGatewayToken(gw.dataDir), gw.token);
  const empty = makeTempDir();
  assert.throws(
    () => localGatewayToken(empty),
    (error: Error) =>
      error instanceof TokenFileError &&
      error.code === 'TOKEN_FILE_MISSING' &&
      error.message === `token file ${path.join(empty, 'token')} does not exist: start \`switchboard gateway\` with this data dir once to create it`,
  );
  fs.writeFileSync(path.join(empty, 'token'), '\n');
  assert.throws(() => localGatewayToken(empty), (error: Error) => error instanceof TokenFileError && error.code === 'TOKEN_FILE_EMPTY');
  // Given empty (an unset variable passed on) or blank, it is not taken for the working directory (QA).
  for (const dataDir of ['', '  ']) {
    const named = `dataDir ${JSON.stringify(dataDir)} names no directory: give a data dir's path, or leave it out for SWITCHBOARD_DATA_DIR's, else the default`;
    assert.throws(() => localGatewayToken(dataDir), (error: Error) => error instanceof TypeError && error.message === named);
    assert.throws(() => localGatewayUrl(dataDir), (error: Error) => error instanceof TypeError && error.message === named);
  }
  // A ~ no shell expanded would be a directory named ~ in the working directory (operator QA).
  const tilde = 'dataDir "~/sbx" starts with ~, which only a shell expands, and none did: give the full path, or leave it out for SWITCHBOARD_DATA_DIR\'s, else the default';
  assert.throws(() => localGatewayUrl('~/sbx'), (error: Error) => error instanceof TypeError && error.message === tilde);
  // Without a data dir: SWITCHBOARD_DATA_DIR's, as the CLI and the gateway take it, and connect() goes there.
  const saved = process.env['SWITCHBOARD_DATA_DIR'];
  process.env['SWITCHBOARD_DATA_DIR'] = gw.dataDir;
  try {
    assert.is(localGatewayUrl(), `unix:${socketOf(gw.dataDir)}`);
    assert.is(localGatewayToken(), gw.token);
    const client = await connect({ token: localGatewayToken() });
    assert.is((await client.call('gateway.status', {})).dataDir, gw.dataDir);
    await client.close();
    // Set but empty is refused, as the CLI refuses it, rather than read as the default data dir.
    process.env['SWITCHBOARD_DATA_DIR'] = '';
    assert.throws(() => localGatewayToken(), (error: Error) => error instanceof TypeError && error.message === 'SWITCHBOARD_DATA_DIR is set but empty: give it a value, or unset it to use the default');
    assert.throws(() => localGatewayUrl(), TypeError);
    process.env['SWITCHBOARD_DATA_DIR'] = '~/sbx';
    assert.throws(
      () => localGatewayToken(),
      (error: Error) =>
        error instanceof TypeError &&
        error.message === 'SWITCHBOARD_DATA_DIR "~/sbx" starts with ~, which only a shell expands, and none did: give the full path, or unset it for the default',
    );
  } finally {
    if (saved === undefined) delete process.env['SWITCHBOARD_DATA_DIR'];
    else process.env['SWITCHBOARD_DATA_DIR'] = saved;
  }
});

/** A listener on 127.0.0.1 at the default port, counting connections; undefined when the port is taken (a gateway of the developer's). */
async function listenOnDefaultPort(): Promise<{ readonly connections: number; close(): void } | undefined> {
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  const listening = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(Number(new URL(DEFAULT_URL).port), '127.0.0.1', () => resolve(true));
  });
  if (!listening) return undefined;
  return {
    get connections() {
      return connections;
    },
    close: () => server.close(),
  };
}

/** NODE_OPTIONS for a CLI that takes itself for one on Windows: no Unix sockets, the default URL a port. */
function asOnWindows(): string {
  const preload = path.join(makeTempDir(), 'windows.cjs');
  fs.writeFileSync(preload, "Object.defineProperty(process, 'platform', { value: 'win32' });\n");
  return `--require ${preload}`;
}

squatterTest('on Windows, no gateway on the default port is told as that, not as no gateway on the data dir: one may run on another port', async () => {
  const dataDir = makeTempDir();
  fs.writeFileSync(path.join(dataDir, 'token'), 'sba_windows\n', { mode: 0o600 });
  const result = await runCli(['status', '--data-dir', dataDir], { env: { NODE_OPTIONS: asOnWindows() } });
  assert.is(result.code, 3, result.stderr);
  assert.is(
    result.stderr,
    'switchboard: gateway not reachable at ws://127.0.0.1:18790 (ECONNREFUSED): no gateway listens on the default port: start one (`switchboard gateway`), or for one on another port give its URL (--url / SWITCHBOARD_URL) and its token (SWITCHBOARD_TOKEN)\n',
  );
});

// Only root can give a socket and its directory to another user.
(process.getuid?.() === 0 ? test : test.skip)('a unix: URL to another user\'s socket, in that user\'s dir, is not sent the data dir\'s admin token: NO_TOKEN, and nothing connects', async () => {
  const gw = await startInProcessGateway();
  const theirs = makeTempDir();
  const socket = path.join(theirs, 'gateway.sock');
  let connections = 0;
  const server = net.createServer((connection) => {
    connections++;
    connection.destroy();
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  fs.lchownSync(socket, 65534, 65534);
  fs.chownSync(theirs, 65534, 65534);
  try {
    const sent = await runCli(['status', '--url', `unix:${socket}`, '--data-dir', gw.dataDir]);
    assert.is(
      sent.stderr,
      `switchboard: no token for unix:${socket}: ${socket} belongs to uid 65534, not to this user (uid 0), and the data dir's token (${path.join(gw.dataDir, 'token')}) goes only to a socket of this user's own; pass that gateway's token in SWITCHBOARD_TOKEN (or --token), or call without --url / SWITCHBOARD_URL to use the data dir's socket\n`,
    );
    assert.is(sent.code, 3);
    assert.is(connections, 0);
  } finally {
    server.close();
  }
});

test.run();
