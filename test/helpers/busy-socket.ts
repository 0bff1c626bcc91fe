/**
 * A gateway stand-in on a Unix socket with a backlog of one, whose event loop is busy for a while
 * after it listens (a process of its own: a loop blocked in the test's would block the test too).
 * Meanwhile the kernel holds two connections for it and refuses the next with EAGAIN; then it
 * answers every HTTP request with `body` (JSON) and takes WebSocket upgrades.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface BusySocket {
  url: string;
  /** Connects until one is refused: the backlog is full. Resolves with the refusal's code. */
  fill(): Promise<string | undefined>;
  stop(): void;
}

export async function busySocketGateway(busyMs: number, body: string): Promise<BusySocket> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-busy-'));
  const socketPath = path.join(dir, 'gateway.sock');
  const ws = createRequire(import.meta.url).resolve('ws');
  const script = `
    const server = require('node:http').createServer((request, response) => {
      request.resume();
      request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end(${JSON.stringify(body)}));
    });
    new (require(${JSON.stringify(ws)}).WebSocketServer)({ server });
    server.listen({ path: ${JSON.stringify(socketPath)}, backlog: 1 }, () => {
      process.stdout.write('listening');
      for (const end = Date.now() + ${busyMs}; Date.now() < end; );
    });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve, reject) => {
    child.stdout.once('data', resolve);
    child.once('exit', (code) => reject(new Error(`the busy gateway exited first (${code})`)));
  });
  const waiting: net.Socket[] = [];
  return {
    url: `unix:${socketPath}`,
    // Linux lets a backlog of one hold two connections not yet accepted.
    fill: () =>
      new Promise((resolve) => {
        const next = () => {
          const socket = net.connect({ path: socketPath });
          waiting.push(socket);
          socket.once('connect', next);
          socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code));
        };
        next();
      }),
    stop: () => {
      for (const socket of waiting) socket.destroy();
      child.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
