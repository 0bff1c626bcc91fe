/**
 * A raw TCP server speaking whatever HTTP (or not) a test scripts: how the client copes with
 * servers nobody here wrote, byte for byte.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface FakeServer {
  /** http://127.0.0.1:<port>/rpc?x=1 (https: with `tlsOptions`) */
  url: URL;
  /** Each request's bytes (latin1) as the server received them, up to the end of its body. */
  requests: string[];
  close(): Promise<void>;
}

/**
 * Calls `answer(socket)` once a request (head and Content-Length body) has fully arrived. With
 * `tlsOptions` (a certificate and its key), it speaks TLS.
 */
export async function fakeServer(answer: (socket: net.Socket) => void, tlsOptions?: tls.TlsOptions): Promise<FakeServer> {
  const requests: string[] = [];
  const sockets = new Set<net.Socket>();
  const onSocket = (socket: net.Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const headEnd = received.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(received);
      if (headEnd === -1 || !length || received.length < headEnd + 4 + Number(length[1])) return;
      requests.push(received);
      answer(socket);
    });
  };
  const server = tlsOptions ? tls.createServer(tlsOptions, onSocket) : net.createServer(onSocket);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: new URL(`${tlsOptions ? 'https' : 'http'}://127.0.0.1:${port}/rpc?x=1`),
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
