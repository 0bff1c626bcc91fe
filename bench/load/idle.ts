/**
 * Idle connections for the heap figure: opens `count` sockets (spread over loopback source
 * addresses 127.0.0.2, .3, ... `perAddress` each, so a per-address connection cap never bites),
 * subscribes each to a session of its own when `subscribe` is set, tells the parent "opened", and
 * holds them until told "close".
 *
 * Config (JSON in argv[2]): { url, token, count, perAddress, subscribe }.
 */
import type WebSocket from 'ws';
import { failTo, hear, tell } from '../lib/child.js';
import { closeAll, open, openMany } from '../lib/connect.js';

interface Config {
  url: string;
  token: string;
  count: number;
  perAddress: number;
  subscribe: boolean;
}

/** Handshakes at a time: below the default listen backlog (511) with room. */
const OPEN_CONCURRENCY = 64;

async function main(config: Config): Promise<void> {
  const started = performance.now();
  const sockets = await openMany(config.count, OPEN_CONCURRENCY, async (index) => {
    const socket = await open(config.url, { token: config.token, localAddress: `127.0.0.${2 + Math.floor(index / config.perAddress)}` });
    if (config.subscribe) await subscribe(socket, `agent:idle${index % 50}:telegram:direct:U${index}`);
    return socket;
  });
  tell({ type: 'opened', count: sockets.length, ms: performance.now() - started });
  await hear('close');
  await closeAll(sockets, 5_000);
  tell({ type: 'closed' });
}

function subscribe(socket: WebSocket, sessionKey: string): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'session.subscribe', params: { sessionKey } }));
    socket.once('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { error?: unknown };
      if (message.error) reject(new Error(`session.subscribe failed: ${JSON.stringify(message.error)}`));
      else resolve();
    });
  });
}

main(JSON.parse(process.argv[2] ?? '{}') as Config).then(
  () => process.exit(0),
  failTo('bench load idle'),
);
