/** Opening many client sockets, the same way for every server under test. */
import WebSocket from 'ws';

export interface OpenOptions {
  /** Sent as `Authorization: Bearer <token>` (ignored by the baselines). */
  token: string;
  /** Source address on the loopback net (127.0.0.0/8), to spread connections over addresses. */
  localAddress?: string;
  timeoutMs?: number;
}

export function open(url: string, options: OpenOptions): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, {
      headers: { authorization: `Bearer ${options.token}` },
      perMessageDeflate: false,
      handshakeTimeout: options.timeoutMs ?? 10_000,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    socket.once('open', () => {
      socket.removeAllListeners('error');
      socket.on('error', () => {});
      resolve(socket);
    });
    socket.once('unexpected-response', (_request, response) => {
      reject(new Error(`${url} refused the upgrade with HTTP ${response.statusCode ?? '?'}`));
      socket.terminate();
    });
    socket.once('error', (error) => reject(error));
  });
}

/** Opens `count` sockets, at most `concurrency` handshakes at a time (the listen backlog is finite). */
export async function openMany(
  count: number,
  concurrency: number,
  openOne: (index: number) => Promise<WebSocket>,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = new Array<WebSocket>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      sockets[index] = await openOne(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return sockets;
}

/** Resolves once every socket has closed, or after `timeoutMs` (then terminates what is left). */
export async function closeAll(sockets: readonly WebSocket[], timeoutMs = 2_000): Promise<void> {
  const closed = sockets.map(
    (socket) =>
      new Promise<void>((resolve) => {
        if (socket.readyState === WebSocket.CLOSED) return resolve();
        socket.once('close', () => resolve());
        socket.close(1000, 'bench done');
      }),
  );
  const timer = setTimeout(() => {
    for (const socket of sockets) socket.terminate();
  }, timeoutMs);
  await Promise.all(closed);
  clearTimeout(timer);
}
