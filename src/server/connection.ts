/**
 * One client connection: frames in, dispatch, frames out. Knows nothing of methods. Its state is
 * an explicit machine (OPEN -> CLOSING -> CLOSED) so shutdown can wait for in-flight calls. The
 * gateway hands it its socket's events (receive, pong, markClosed) through listeners shared by
 * all connections, so an idle one holds no closures.
 */
import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { RpcError, type ErrorName } from '../protocol/errors.js';
import { errorResponse, refuseFrame, type RpcDispatcher } from '../protocol/jsonrpc.js';
import { readBudget, readPool } from '../store/read-budget.js';
import type { Principal } from './auth.js';
import type { CallContext } from './context.js';
import type { Subscriber } from './hub.js';
import { BUFFER_OVERHEAD_BYTES, type UnfinishedHolder } from './unfinished-messages.js';

export type ConnectionState = 'OPEN' | 'CLOSING' | 'CLOSED';

/** RFC 6455 close codes the gateway sends (README.md lists them for client authors). */
export const CloseCode = {
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  /** The server hit a condition that kept it from fulfilling the request: a replay that failed. */
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  /** IANA's registry (RFC 6455 section 11.7): a temporary condition, here the gateway holding too much of unfinished messages. */
  TRY_AGAIN_LATER: 1013,
} as const;

/**
 * How long a peer that was sent a close frame has to answer before the socket is destroyed: a
 * slow consumer may have megabytes to read first, and must still see why it was cut.
 */
const CLOSE_GRACE_MS = 30_000;

/**
 * How long a connection cut for what its unfinished message holds is kept, for its close frame to
 * leave: its reply is not awaited (the gateway reads no more of it), and what it holds is freed
 * only once its socket is gone, uncounted meanwhile (see UnfinishedMessages).
 */
const UNFINISHED_CUT_GRACE_MS = 250;

/**
 * What ws's receiver keeps between reads: reads not yet parsed into frames, and the fragments of
 * the message begun. Private fields of ws (the version in package-lock.json): its state is the one
 * exact account. Counting reads from outside was not: control frames counted for ever (an idle
 * subscriber's pongs), and many fragments in one read counted as one (review).
 */
interface ReceiverState {
  _buffers?: unknown;
  _fragments?: unknown;
}

/**
 * Frames held at the in-flight limit, taken from `next` on: an index, not shift(), which moves
 * every frame left each time (a chunk of ~9,000 minimal frames took 18 ms to run through).
 */
interface HeldFrames {
  readonly frames: Array<[RawData, boolean]>;
  next: number;
}

/** RFC 8259 section 8.1: JSON exchanged between systems is UTF-8; a frame that is not is not JSON. */
const BINARY_NOT_UTF8 = JSON.stringify(errorResponse(null, 'PARSE_ERROR', 'Parse error: a binary frame must hold UTF-8 encoded JSON'));

/** The error a closing connection answers a request with instead of running it. */
export interface Refusal {
  name: ErrorName;
  message: string;
}

/** The TCP socket under a WebSocket, as a connection uses it. */
export type SocketStream = Pick<Writable, 'cork' | 'uncork' | 'writableLength' | 'writableNeedDrain' | 'once'> & Pick<Socket, 'bytesWritten'>;

export interface ConnectionOptions {
  /** Unsent bytes past which a subscriber is cut with 1008 "slow consumer". */
  maxBufferedBytes: number;
  /** Unwritten bytes past which the connection reads no more requests until its socket drains. */
  answerHighWaterBytes: number;
  /** Frames (a request, or a batch) in flight at which the connection reads no more until one is answered. */
  maxInFlight: number;
  /** Told when a connection is cut as a slow consumer, with the bytes it left unsent: for the log, or no one would know why. */
  onSlowConsumer(connection: Connection, unsentBytes: number): void;
}

export class Connection implements Subscriber, UnfinishedHolder {
  readonly connectionId: number;
  readonly remoteAddress: string;
  #state: ConnectionState = 'OPEN';
  #inFlight = 0;
  #alive = true;
  #corked = false;
  /** Set by close(): what a request that arrives while in-flight calls finish is answered. */
  #refusal: Refusal | undefined;
  /** The stream's unsent bytes when it was corked: what earlier bursts left for the peer to take. */
  #unsentAtCork = 0;
  /** What the reads of this connection's frames may still take until their answers are written (see ReadBudget). */
  readonly #readPool = readPool();
  /** Bytes of answers to reads (peeks, drains, lists, traces) of earlier bursts not yet written: see bufferedAmount. */
  #unwrittenReadAnswers = 0;
  /** Bytes of answers to reads in the current burst: they join #unwrittenReadAnswers when it is written. */
  #burstReadAnswers = 0;
  /** Waiting for the socket to drain before reading more requests (see #throttle). */
  #waitingForDrain = false;
  /**
   * Bytes the socket had handed to the network at the last heartbeat, when more waited behind them
   * (see heartbeat); undefined when nothing waited.
   */
  #sentAtHeartbeat: number | undefined;
  /**
   * Frames read while maxInFlight were in flight, in arrival order: run as answers free places
   * (see #hold). Undefined when none, as on almost every connection.
   */
  #held: HeldFrames | undefined;
  /** Cut for what its unfinished message holds: it is read no more (see cutForUnfinished). */
  #readingStopped = false;
  /** Whether the socket is paused, for any reason above. */
  #readingPaused = false;
  /** Settles when nothing is in flight; shared, so every close() caller waits for the same moment. */
  #drained: Promise<void> | undefined;
  #resolveDrained: (() => void) | undefined;
  readonly #socket: WebSocket;
  /** The TCP socket under #socket, corked while a burst of frames is written (see #send). */
  readonly #stream: SocketStream;
  readonly #dispatcher: RpcDispatcher<CallContext>;
  readonly #options: ConnectionOptions;
  readonly principal: Principal;

  constructor(
    id: number,
    socket: WebSocket,
    stream: SocketStream,
    remoteAddress: string,
    principal: Principal,
    dispatcher: RpcDispatcher<CallContext>,
    options: ConnectionOptions,
  ) {
    this.connectionId = id;
    this.remoteAddress = remoteAddress;
    this.principal = principal;
    this.#socket = socket;
    this.#stream = stream;
    this.#dispatcher = dispatcher;
    this.#options = options;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /**
   * Bytes the peer has not yet taken, what is left of earlier bursts, less the answers to its own
   * reads: what tells a slow consumer. The current burst's frames are not counted: they wait in
   * Node's buffer only because the socket is corked (see #send). Answers to reads are not either:
   * they are the peer's own asking, bounded by its read pool, and an agent catching up over a slow
   * link with a few large drains was cut by the next push while it read as fast as its link let it.
   * An answer is taken off only once all of it is written, so what is written of it meanwhile lets
   * pushes run ahead by as much: bounded by the read pool, MAX_READ_BYTES_IN_FLIGHT.
   */
  get bufferedAmount(): number {
    // While corked, nothing leaves the stream: what it gained since is exactly this burst.
    const unsent = this.#corked ? this.#socket.bufferedAmount - (this.#stream.writableLength - this.#unsentAtCork) : this.#socket.bufferedAmount;
    return Math.max(0, unsent - this.#unwrittenReadAnswers);
  }

  push(frame: string): boolean {
    if (this.#state !== 'OPEN') return false;
    const unsent = this.bufferedAmount;
    if (unsent > this.#options.maxBufferedBytes) {
      // Cut first: what tells of it must not keep it from happening.
      this.#cut(CloseCode.POLICY_VIOLATION, 'slow consumer');
      this.#options.onSlowConsumer(this, unsent);
      return false;
    }
    this.#send(frame);
    return true;
  }

  /** The peer answered a ping: it is alive until the next heartbeat. */
  pong(): void {
    this.#alive = true;
  }

  /**
   * Liveness check, called every PING_INTERVAL_MS: a connection that did not answer the previous
   * ping is dead and is terminated (its subscriptions end with the close event). One holding
   * frames is not judged: the gateway stopped reading it, pongs included, because its own calls
   * are slow. It is judged again from the first heartbeat after it reads again. A ping goes out
   * behind what was sent before it (pushes, answers): over a slow link it reaches the peer late,
   * and its pong comes late (QA: an agent reading pushes over a thin link was cut every minute,
   * long before the slow-consumer cut). So what else says the peer is there counts as a pong: a
   * frame from it (receive), or bytes taken by the network from behind a full send buffer, which
   * only a peer reading makes room in. Bytes the network takes into a buffer with room say
   * nothing: a link gone dead takes them too. With `judge` false, it is only pinged: the gateway
   * itself was too late to tell.
   */
  heartbeat(judge = true): void {
    if (this.#held !== undefined) {
      this.#alive = true;
      return;
    }
    if (this.#sentAtHeartbeat !== undefined && this.#sentToNetwork() > this.#sentAtHeartbeat) this.#alive = true;
    this.#sentAtHeartbeat = this.#stream.writableLength > 0 ? this.#sentToNetwork() : undefined;
    if (!this.#alive && judge) {
      this.#socket.terminate();
      return;
    }
    this.#alive = false;
    this.#socket.ping();
  }

  /**
   * Stops taking new work, lets in-flight calls answer, then closes with the given code. A request
   * that arrives meanwhile is answered with `refusal`: the peer learns it was not run, rather than
   * having to guess from the close whether it was.
   */
  async close(code: number, reason: string, refusal?: Refusal): Promise<void> {
    if (this.#state === 'CLOSED') return;
    this.#state = 'CLOSING';
    this.#refusal = refusal;
    // Held frames were never run: each is refused now as one that arrives while closing.
    const held = this.#held;
    this.#held = undefined;
    this.#updateReading();
    for (const [data, isBinary] of held?.frames.slice(held.next) ?? []) this.receive(data, isBinary);
    if (this.#inFlight > 0) {
      this.#drained ??= new Promise<void>((resolve) => (this.#resolveDrained = resolve));
      await this.#drained;
    }
    this.#cut(code, reason);
  }

  markClosed(): void {
    this.#state = 'CLOSED';
    this.#resolveDrained?.();
  }

  /**
   * What ws holds of the peer's messages not yet whole, called once it has parsed a read, each
   * buffer with what it costs beside its bytes. A fragment is a view of the read it came in, which
   * it keeps whole until the message is: the memory under it is counted, once. Of a read not yet
   * parsed into frames, only its bytes left: the part parsed is let go with the frame it ends.
   */
  unfinishedBytes(): number {
    const { _buffers: reads, _fragments: fragments } = (this.#socket as unknown as { _receiver?: ReceiverState })._receiver ?? {};
    // Almost every read ends with a whole message. Fields not there (another ws): nothing counted.
    if (!Array.isArray(reads) || !Array.isArray(fragments) || (reads.length === 0 && fragments.length === 0)) return 0;
    const kept = new Set<ArrayBufferLike>();
    let bytes = 0;
    for (const fragment of fragments as Buffer[]) {
      bytes += BUFFER_OVERHEAD_BYTES;
      if (kept.has(fragment.buffer)) continue;
      kept.add(fragment.buffer);
      bytes += fragment.buffer.byteLength;
    }
    for (const read of reads as Buffer[]) bytes += BUFFER_OVERHEAD_BYTES + (kept.has(read.buffer) ? 0 : read.length);
    return bytes;
  }

  cutForUnfinished(): void {
    this.#readingStopped = true;
    // One already closing (a slow consumer, a revoked token) keeps its own close and grace.
    if (this.#state === 'OPEN') this.#cut(CloseCode.TRY_AGAIN_LATER, 'the gateway holds too much of unfinished messages: send it again', UNFINISHED_CUT_GRACE_MS);
    else this.#updateReading();
  }

  #cut(code: number, reason: string, graceMs = CLOSE_GRACE_MS): void {
    if (this.#state === 'OPEN') this.#state = 'CLOSING';
    // Held frames are not run (nor answered: the close frame goes out first). Reading resumes for
    // the peer's close frame, unless the socket waits to drain or is read no more.
    this.#held = undefined;
    this.#updateReading();
    this.#socket.close(code, reason);
    setTimeout(() => this.#socket.terminate(), graceMs).unref();
  }

  /**
   * Reads no more requests while more than answerHighWaterBytes of answers wait to be written,
   * until the socket drains. The in-flight limit counts requests until they are answered, not
   * until the answers are taken: a client that sent requests faster than it read their answers
   * had the gateway hold all of them. Now it is slowed, and loses nothing; one that stops reading
   * altogether stops answering pings as well, and is closed as dead (see heartbeat).
   */
  #throttle(): void {
    if (this.#waitingForDrain || this.#socket.bufferedAmount <= this.#options.answerHighWaterBytes || !this.#stream.writableNeedDrain) return;
    this.#waitingForDrain = true;
    this.#updateReading();
    this.#stream.once('drain', () => {
      this.#waitingForDrain = false;
      this.#updateReading();
      if (this.#state === 'OPEN') this.#runHeld();
    });
  }

  /**
   * Bytes the socket has handed to the network: they move only as whole writes complete, and
   * copying Node's list of those waiting is not free, so it is asked only while some wait.
   */
  #sentToNetwork(): number {
    return this.#stream.bytesWritten - this.#stream.writableLength;
  }

  /**
   * A frame read while maxInFlight are in flight (or while answers wait to drain, see receive)
   * waits, and the connection reads no more until answers free places: TCP slows the client. Refusing it instead lost notifications without a
   * word (they cannot be answered), and had clients that pipeline retry what they could have
   * waited for. Pausing the socket stops its reads, but ws still emits the frames of the chunk it
   * was reading: that chunk (~64 KiB) bounds what is held.
   */
  #hold(data: RawData, isBinary: boolean): void {
    (this.#held ??= { frames: [], next: 0 }).frames.push([data, isBinary]);
    this.#updateReading();
  }

  /** Runs held frames while there is room (places in flight, and no answers waiting to drain), in the order they came. */
  #runHeld(): void {
    const held = this.#held;
    if (held === undefined) return;
    while (this.#held === held && held.next < held.frames.length && this.#inFlight < this.#options.maxInFlight && !this.#waitingForDrain) {
      // Taken before it runs: a run that closes this connection refuses only the frames after it.
      const [data, isBinary] = held.frames[held.next++]!;
      this.#run(data, isBinary);
    }
    if (held.next === held.frames.length && this.#held === held) {
      this.#held = undefined;
      this.#updateReading();
    }
  }

  #updateReading(): void {
    const pause = this.#readingStopped || this.#waitingForDrain || this.#held !== undefined;
    if (pause === this.#readingPaused) return;
    this.#readingPaused = pause;
    if (pause) this.#socket.pause();
    else this.#socket.resume();
  }

  /** A frame from the peer. */
  receive(data: RawData, isBinary: boolean): void {
    this.#alive = true;
    // Also while its answers wait to drain: ws still emits the rest of the chunk it was reading
    // once reading is paused, and run, a chunk of tiny requests for large answers (rpc.discover)
    // queued ~60 MB of answers for a client that reads none.
    if (this.#state === 'OPEN' && (this.#held !== undefined || this.#waitingForDrain || this.#inFlight >= this.#options.maxInFlight)) {
      this.#hold(data, isBinary);
      return;
    }
    this.#run(data, isBinary);
  }

  #run(data: RawData, isBinary: boolean): void {
    // binaryType is the default 'nodebuffer', so a frame is one Buffer. Binary frames are read as
    // UTF-8 JSON too: some clients send text as bytes. ws has checked a text frame's UTF-8 (1007
    // otherwise); a binary frame's is checked here, or decoding would store U+FFFD in its place.
    if (isBinary && !isUtf8(data as Buffer)) {
      this.#send(BINARY_NOT_UTF8);
      return;
    }
    const text = (data as Buffer).toString();
    // Once closing (shutdown, revoked token, slow consumer) nothing new runs: a revoked token must
    // not act through a peer that ignores the close. Until the close frame is out, say so.
    if (this.#state !== 'OPEN') {
      if (this.#refusal && this.#socket.readyState === this.#socket.OPEN) this.#refuse(text, this.#refusal);
      return;
    }
    const tasks: Array<() => void> = [];
    const budget = readBudget(this.#readPool);
    const context: CallContext = {
      ingress: 'websocket',
      principal: this.principal,
      connectionId: this.connectionId,
      remoteAddress: this.remoteAddress,
      subscriber: this,
      afterResponse: (task) => tasks.push(task),
      readBudget: budget,
      frameBytes: (data as Buffer).length,
    };
    this.#inFlight++;
    // One continuation for the answer and the bookkeeping after it, whatever the answer does: a
    // then() and a finally() cost a promise and two closures more per call.
    this.#dispatcher.handleFrame(text, context).then(
      (response) => {
        try {
          const read = budget.taken;
          if (response !== undefined && this.#socket.readyState === this.#socket.OPEN) {
            // What the reads took comes back once the answer is written, so the pool also bounds what
            // waits in the gateway for a client that reads slowly.
            if (read === 0) this.#send(response);
            else this.#sendReadAnswer(response, read);
            this.#throttle();
          } else {
            this.#readPool.bytes += read;
          }
          for (const task of tasks) task();
        } finally {
          this.#settled();
        }
      },
      (error: unknown) => {
        this.#readPool.bytes += budget.taken;
        this.#settled();
        // The dispatcher answers every error it is handed, so this is a bug: it must still stop the
        // process (an unhandled rejection), as it did before.
        throw error;
      },
    );
  }

  /** A frame's work is over, answered or not: the next held frame may run, and a drain may end. */
  #settled(): void {
    this.#inFlight--;
    if (this.#inFlight === 0) this.#resolveDrained?.();
    if (this.#state === 'OPEN') this.#runHeld();
  }

  #sendReadAnswer(response: string, read: number): void {
    const bytes = Buffer.byteLength(response);
    this.#send(response, () => {
      this.#readPool.bytes += read;
      this.#unwrittenReadAnswers -= bytes;
    });
    // After #send, which corks: the answer is part of the current burst.
    this.#burstReadAnswers += bytes;
  }

  /** Answers every request in the frame with the refusal, without running any. */
  #refuse(text: string, { name, message }: Refusal): void {
    const answer = refuseFrame(text, new RpcError(name, message));
    if (answer !== undefined) this.#send(answer);
  }

  /**
   * The frames of one burst of work (the answers one commit settles, the events one delivery
   * pushes) leave in one write: the socket stays corked until the burst's promise continuations
   * have run (a tick queued from them runs once the microtask queue is empty), not a loop turn
   * longer. Written one by one, each frame costs a syscall; under load that was a tenth of the
   * gateway's time.
   */
  #send(frame: string, written?: () => void): void {
    if (!this.#corked) {
      this.#corked = true;
      this.#unsentAtCork = this.#stream.writableLength;
      this.#stream.cork();
      process.nextTick(() => {
        this.#corked = false;
        this.#unwrittenReadAnswers += this.#burstReadAnswers;
        this.#burstReadAnswers = 0;
        this.#stream.uncork();
      });
    }
    this.#socket.send(frame, written);
  }
}
