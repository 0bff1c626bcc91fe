/**
 * The HTTP connections requests came over, until they close: at a shutdown, those kept alive are
 * not closed at once. A publisher's next request may already be on its way over one, and closing
 * it reset that request, which the publisher cannot tell from one lost after it was run (QA: a
 * keep-alive publisher got ECONNRESET at every SIGTERM). Left open for a while, each is answered
 * 503 SHUTTING_DOWN with `Connection: close`, which closes it, when its next request comes.
 */
import type { Socket } from 'node:net';

/** How long a shutdown leaves connections kept alive open for their next request, at most. */
export const KEEP_ALIVE_LINGER_MS = 1_000;

export class KeptAliveConnections {
  readonly #sockets = new Set<Socket>();

  /** A request came over `socket` (a WebSocket upgrade is no request: its socket is not counted). */
  served(socket: Socket): void {
    if (this.#sockets.has(socket)) return;
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Resolves once every connection has closed, or after `lingerMs`, whichever is first. */
  closedOrAfter(lingerMs: number): Promise<void> {
    if (this.#sockets.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiting = [...this.#sockets];
      let open = waiting.length;
      const timer = setTimeout(finish, lingerMs);
      function closed(): void {
        if (--open === 0) finish();
      }
      function finish(): void {
        clearTimeout(timer);
        for (const socket of waiting) socket.off('close', closed);
        resolve();
      }
      for (const socket of waiting) socket.once('close', closed);
    });
  }
}
