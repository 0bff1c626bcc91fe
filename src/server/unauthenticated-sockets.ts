/**
 * The sockets the gateway holds for no authenticated client, bounded in number across all
 * addresses. Per-address limits cannot bound them (a local client may connect from any of
 * 127.0.0.0/8, a remote one from many addresses), and the handshake timeout bounds how long each
 * one stays, not how many there are: enough of them would use up the gateway's file descriptors
 * and memory, and its real clients could no longer connect.
 *
 * A socket is in one state at a time; it counts in UNAUTHENTICATED and IDLE:
 *
 *   accepted ─► UNAUTHENTICATED ─admitted─► SERVING ─answered─► IDLE ─admitted─► SERVING ...
 *   UNAUTHENTICATED or IDLE ─upgraded to an authenticated WebSocket─► not tracked, for good
 *   any state ─closed─► not tracked
 *
 * UNAUTHENTICATED: no request on it was admitted yet. It has sent nothing, or part of its
 * headers, or a request that was refused (401, 404, a refused upgrade) or needs no token
 * (/healthz), and is being answered, or its refused body thrown away.
 * SERVING: a request on it was admitted (a valid token) and is not answered yet; HTTP/1.1 may
 * pipeline several. It is a client's, and bounded by its own limits (body size and time).
 * IDLE: its admitted requests were answered and it waits, HTTP keep-alive, for the next. It is
 * not authenticated: on HTTP each request is, and the next one may bring no token, or never come.
 *
 * Past the limit, the oldest counted socket is closed for each new one, rather than the new one
 * refused. Refusing new sockets would hand the gateway to whoever fills it first: a flood only
 * has to reconnect as its sockets time out, and the connections refused are those of the CLI and
 * the agents. Closing the oldest turns it the other way: a flood's sockets are the oldest, having
 * been held, while a client's socket counts only from its connect to its request headers, about
 * one round trip, so it is pushed out only if `limit` newer sockets come in that time (2048 in
 * 100 ms is 20,000 connections a second, a flood for a firewall to stop, not a gateway).
 * UNAUTHENTICATED sockets go before IDLE ones: an IDLE socket's client showed a valid token, and a
 * flood of strangers must not push it out while there are strangers' sockets to close.
 */
import type { Socket } from 'node:net';

/**
 * How long the log waits without a socket closed before it says the flood is over (with how many
 * were closed): with the line that says it began, at most two lines a minute however long it lasts.
 */
const DROP_LOG_QUIET_MS = 60_000;

/** What this needs of a socket; a net.Socket is one. */
export interface TrackedSocket {
  readonly destroyed: boolean;
  readonly remoteAddress?: string | undefined;
  destroy(): unknown;
  on(event: 'close', listener: () => void): unknown;
  off(event: 'close', listener: () => void): unknown;
}

export interface UnauthenticatedSocketsOptions {
  /** Sockets counted at most (UNAUTHENTICATED and IDLE together), at least 1. */
  limit: number;
  log: (line: string) => void;
  /** @default DROP_LOG_QUIET_MS (60 s) */
  quietMs?: number;
}

/** A flood in progress, for the log: how many were closed, and whether any were lately. */
interface Flood {
  closed: number;
  closedSinceCheck: number;
  timer: NodeJS.Timeout;
}

export class UnauthenticatedSockets<S extends TrackedSocket = Socket> {
  /** UNAUTHENTICATED sockets, oldest first (a Set keeps the order they were added in). */
  readonly #unauthenticated = new Set<S>();
  /** IDLE sockets, oldest first: ordered by when their last request was answered. */
  readonly #idle = new Set<S>();
  /** SERVING sockets, with how many of their admitted requests are not answered yet. */
  readonly #serving = new Map<S, number>();
  readonly #limit: number;
  readonly #log: (line: string) => void;
  readonly #quietMs: number;
  /** One 'close' listener for every socket (`this` is the socket), so none costs a closure. */
  readonly #onClose: () => void;
  #flood: Flood | undefined;

  constructor(options: UnauthenticatedSocketsOptions) {
    if (!Number.isInteger(options.limit) || options.limit < 1) {
      throw new RangeError(`maxUnauthenticatedSockets must be a whole number of at least 1, not ${options.limit}`);
    }
    this.#limit = options.limit;
    this.#log = options.log;
    this.#quietMs = options.quietMs ?? DROP_LOG_QUIET_MS;
    const forget = (socket: S) => this.#forget(socket);
    this.#onClose = function (this: S) {
      forget(this);
    };
  }

  /** Sockets counted against the limit now (UNAUTHENTICATED and IDLE). */
  get size(): number {
    return this.#unauthenticated.size + this.#idle.size;
  }

  /** A socket the server accepted. One it already tracks (a request replayed on it) stays as it is. */
  accepted(socket: S): void {
    if (socket.destroyed || this.#tracks(socket)) return;
    socket.on('close', this.#onClose);
    this.#enter(this.#unauthenticated, socket);
  }

  /**
   * A request on the socket was admitted: the socket is SERVING until every such request is
   * answered. Returns what to call once this one is (more than once does nothing).
   */
  serve(socket: S): () => void {
    if (!this.#tracks(socket)) return ignore;
    this.#unauthenticated.delete(socket);
    this.#idle.delete(socket);
    this.#serving.set(socket, (this.#serving.get(socket) ?? 0) + 1);
    let answered = false;
    return () => {
      if (answered) return;
      answered = true;
      const left = this.#serving.get(socket);
      // Closed, or upgraded, in the meantime: no longer tracked.
      if (left === undefined) return;
      if (left > 1) return void this.#serving.set(socket, left - 1);
      this.#serving.delete(socket);
      if (!socket.destroyed) this.#enter(this.#idle, socket);
    };
  }

  /** The socket is an authenticated WebSocket connection now: it never counts again. */
  upgraded(socket: S): void {
    this.#forget(socket);
    socket.off('close', this.#onClose);
  }

  /**
   * The server has stopped accepting: a flood still going is summed up now (the process may exit
   * before its quiet time ends), and the log's timer stopped. The server closes the sockets.
   */
  close(): void {
    const flood = this.#endFlood();
    if (flood) this.#log(`${closedLine(flood, this.#limit)}; the gateway stopped`);
  }

  #tracks(socket: S): boolean {
    return this.#unauthenticated.has(socket) || this.#idle.has(socket) || this.#serving.has(socket);
  }

  #forget(socket: S): void {
    this.#unauthenticated.delete(socket);
    this.#idle.delete(socket);
    this.#serving.delete(socket);
  }

  /** Adds a socket to a counted state, closing the oldest counted ones first to make room. */
  #enter(state: Set<S>, socket: S): void {
    while (this.size >= this.#limit) {
      const oldest = first(this.#unauthenticated) ?? first(this.#idle)!;
      this.#closed();
      this.#forget(oldest);
      oldest.destroy();
    }
    state.add(socket);
  }

  /** Logs once when sockets start being closed, and once when none has been for #quietMs. */
  #closed(): void {
    if (this.#flood) {
      this.#flood.closed++;
      this.#flood.closedSinceCheck++;
      return;
    }
    const [address, count] = this.#busiestAddress();
    // Normal use never gets here (see DEFAULT_MAX_UNAUTHENTICATED_SOCKETS): the fix is at the source.
    this.#log(
      `${this.#limit} sockets are open without an authenticated request, the most the gateway holds (--max-unauthenticated-sockets): closing the oldest for each new one, so clients with a token still get in; ` +
        `${count} of them from ${address}: if that is a flood, block it before the gateway`,
    );
    const timer = setInterval(() => this.#check(), this.#quietMs);
    timer.unref();
    this.#flood = { closed: 1, closedSinceCheck: 1, timer };
  }

  #check(): void {
    const flood = this.#flood;
    if (!flood) return;
    if (flood.closedSinceCheck > 0) {
      flood.closedSinceCheck = 0;
      return;
    }
    this.#endFlood();
    this.#log(`${closedLine(flood, this.#limit)}; none for ${this.#quietMs / 1000} s`);
  }

  #endFlood(): Flood | undefined {
    const flood = this.#flood;
    if (flood) clearInterval(flood.timer);
    this.#flood = undefined;
    return flood;
  }

  /** The address most counted sockets come from, and how many: once a flood, for its log line. */
  #busiestAddress(): [string, number] {
    const counts = new Map<string, number>();
    for (const socket of [...this.#unauthenticated, ...this.#idle]) {
      const address = socket.remoteAddress ?? 'unknown';
      counts.set(address, (counts.get(address) ?? 0) + 1);
    }
    let busiest: [string, number] = ['unknown', 0];
    for (const entry of counts) if (entry[1] > busiest[1]) busiest = entry;
    return busiest;
  }
}

function closedLine(flood: Flood, limit: number): string {
  return `closed ${flood.closed === 1 ? 'a socket' : `${flood.closed} sockets`} that had no authenticated request, to keep within ${limit}`;
}

function first<T>(set: ReadonlySet<T>): T | undefined {
  return set.values().next().value;
}

function ignore(): void {}
