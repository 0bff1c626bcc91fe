/**
 * The gateway's Unix socket in its data dir, served by the same HTTP server as its TCP port
 * (POST routes and WebSocket upgrades alike).
 *
 * Why: a client that connects to it knows it talks to the gateway of that data dir, as only the
 * dir's owner can create a file there (it is 0700 when the gateway made it; in one that others can
 * add files to, the CLI checks whose the socket is). Any local user can listen on a TCP port the
 * gateway is not holding (it is down, or restarting), and the next CLI call would hand that user
 * the admin token.
 */
import { chmodSync, lstatSync, statSync, unlinkSync } from 'node:fs';
import type { Server as HttpServer } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { socketPathProblem } from '../protocol/socket-path.js';

/** What limits, logs and traces name a connection over the socket by: it has no address. */
export const LOCAL_PEER = 'unix socket';

const localSockets = new WeakSet<Socket>();

/** A connection's remote address, or LOCAL_PEER for the Unix socket's ('unknown' once a TCP socket is gone). */
export function peerAddress(socket: Socket): string {
  return socket.remoteAddress ?? (localSockets.has(socket) ? LOCAL_PEER : 'unknown');
}

export interface LocalSocket {
  readonly path: string;
  /** Stops accepting and removes the file; resolves once its connections have closed too. */
  close(): Promise<void>;
}

/**
 * Listens on `path` and hands each connection to `http`; or says why it cannot, for the gateway to
 * log and go on without it (TCP still serves everything). A socket already at `path` is taken over
 * when nothing answers on it: one that a gateway killed before it could remove it.
 */
export async function listenLocal(path: string, http: HttpServer): Promise<LocalSocket | { problem: string }> {
  const unfit = socketPathProblem(path);
  if (unfit !== undefined) return { problem: `${path}: ${unfit}` };
  // Clients send the token only to a socket of its directory's owner (see unixSocketRefusal): one
  // made in another user's directory (a shared 1777 data dir) every one of them would refuse, while
  // the gateway named it as where to reach it (operator QA).
  const owner = statSync(dirname(path), { throwIfNoEntry: false })?.uid;
  const uid = process.getuid?.();
  if (owner !== undefined && uid !== undefined && owner !== uid) {
    return { problem: `${dirname(path)} belongs to uid ${owner}, not to this gateway's uid ${uid}, and clients refuse a socket there that is not its owner's` };
  }
  const leftover = await removeLeftover(path);
  if (leftover !== undefined) return { problem: leftover };
  const server = createServer((socket) => {
    localSockets.add(socket);
    http.emit('connection', socket);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // The dir already keeps others out; this keeps them out of a data dir made readable by hand.
    chmodSync(path, 0o600);
  } catch (error) {
    server.close();
    return { problem: (error as Error).message };
  }
  return { path, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Removes a socket file left at `path`; says why when something else is in the way. */
async function removeLeftover(path: string): Promise<string | undefined> {
  try {
    if (!lstatSync(path).isSocket()) return `${path} is in the way and is not a socket: remove it`;
    // The store's lock keeps a second gateway off this data dir, but not off a socketPath given
    // outside it: a live server's socket is not taken from it. Only a refused connection says
    // nobody listens; a live server with a full backlog fails a connect too (EAGAIN).
    const probe = await probeSocket(path);
    if (probe === 'answered') return `a server already listens on ${path}`;
    if (probe !== 'ECONNREFUSED') return `cannot tell whether a server listens on ${path} (${probe}): remove it if none does`;
    unlinkSync(path);
  } catch (error) {
    const errno = error as NodeJS.ErrnoException;
    if (errno.code !== 'ENOENT') return `a socket left at ${path} cannot be removed (${errno.code ?? errno.message})`;
  }
  return undefined;
}

/** 'answered' when a server takes a connection on it, else the connect's error code. */
function probeSocket(path: string): Promise<string> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve('answered');
    });
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

