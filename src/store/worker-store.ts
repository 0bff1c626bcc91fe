/**
 * The event store as the gateway uses it: SqliteEventStore running on a worker thread of its own
 * (store-worker.ts). On the gateway's thread a durable append cost more than everything else a
 * call does together (~22 µs of ~32 at 16 connections × 64 calls in flight), the commit's fsync
 * blocked the event loop, and a batch's requests waited behind it; now the statements and the
 * commit run beside the socket work, and the thread only sends calls and receives answers.
 *
 * Semantics are SqliteEventStore's, in the same order: calls cross in one message per turn of the
 * event loop, in the order they were made, and settle once committed. One difference: an append's
 * `complete` runs here, on this thread, when the commit has answered, except for an append with an
 * idempotency key, whose result is stored in its transaction (see store-worker.ts).
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { CommitMetrics } from './commit-queue.js';
import { StoreClosedError, StoreUnavailableError } from './errors.js';
import {
  fromWire,
  toWire,
  type CompleteReply,
  type CompleteRequest,
  type FromWorker,
  type StoreCalls,
  type ToWorker,
  type WorkerAppendResult,
  type WorkerSetup,
} from './thread-messages.js';
import type {
  AckResult,
  AppendOutcome,
  AppendRequest,
  AppendResult,
  EventStore,
  ReadOptions,
  ReadResult,
  SessionRecord,
  StoreOptions,
  StoreStats,
  TokenRecord,
  TokenStore,
  TraceDetail,
  TraceEntry,
} from './types.js';

const WORKER_MODULE = new URL('./store-worker.js', import.meta.url);

interface PendingCall {
  resolve(value: unknown): void;
  reject(reason: unknown): void;
  /** An append's: builds its result from the outcome. */
  complete?: (outcome: AppendOutcome) => unknown;
}

export class WorkerEventStore implements EventStore, TokenStore {
  readonly #worker: Worker;
  readonly #completions: MessagePort;
  readonly #signal: Int32Array;
  readonly #onBackgroundError: (error: unknown) => void;
  readonly #pending = new Map<number, PendingCall>();
  #nextId = 1;
  #outbox: ToWorker = [];
  /** Set once the worker is gone: every call from then on fails with it. */
  #failure: Error | undefined;
  #closing: Promise<void> | undefined;
  readonly #exited: Promise<void>;

  /**
   * Opens the store in `file` on a new worker thread, creating it and its directory if needed.
   * Rejects with what SqliteEventStore.open throws (StoreLockedError, StoreOpenError, RangeError).
   */
  static open(file: string, options: StoreOptions): Promise<WorkerEventStore> {
    const { onBackgroundError = () => undefined, ...workerOptions } = options;
    const signal = new SharedArrayBuffer(4);
    const { port1, port2 } = new MessageChannel();
    const setup: WorkerSetup & { completions: MessagePort } = { file, options: workerOptions, signal, completions: port2 };
    // Started as code that imports the module rather than from its file: a worker inherits the
    // process's flags (--cpu-prof, --max-semi-space-size...), and one started from a file refuses
    // the --input-type of a gateway started by `node --input-type=module -e`.
    const worker = new Worker(`import(${JSON.stringify(WORKER_MODULE.href)})`, { eval: true, workerData: setup, transferList: [port2] });
    return new Promise((resolve, reject) => {
      const failed = (error: unknown) => {
        port1.close();
        reject(error);
      };
      worker.once('error', failed);
      worker.once('exit', (code) => failed(new Error(`the store's worker thread exited (code ${code}) before opening the store`)));
      worker.once('message', (message: FromWorker) => {
        worker.removeAllListeners('error').removeAllListeners('exit');
        if (message.kind === 'ready') resolve(new WorkerEventStore(worker, port1, signal, onBackgroundError));
        else if (message.kind === 'open-failed') failed(fromWire(message.error));
        else failed(new Error(`the store's worker thread sent ${message.kind} before opening the store`));
      });
    });
  }

  private constructor(worker: Worker, completions: MessagePort, signal: SharedArrayBuffer, onBackgroundError: (error: unknown) => void) {
    this.#worker = worker;
    this.#completions = completions;
    this.#signal = new Int32Array(signal);
    this.#onBackgroundError = onBackgroundError;
    worker.on('message', (message: FromWorker) => this.#receive(message));
    completions.on('message', (request: CompleteRequest) => this.#complete(request));
    this.#exited = new Promise((resolve) => {
      worker.once('error', (error) => this.#fail(new StoreUnavailableError(error, { threadLost: true })));
      worker.once('exit', (code) => {
        completions.close();
        this.#fail(new StoreUnavailableError(new Error(`its worker thread exited with code ${code}`), { threadLost: true }));
        resolve();
      });
    });
  }

  append<R>(request: AppendRequest<R>): Promise<AppendResult<R>> {
    const { event, ingress, idempotency, complete } = request;
    return this.#call('append', [idempotency ? { event, ingress, idempotency } : { event, ingress }], complete).then((answer) => {
      const appended = answer as WorkerAppendResult;
      if (appended.status !== 'stored' || 'result' in appended) return appended as AppendResult<R>;
      return { status: 'stored', outcome: appended.outcome, result: complete(appended.outcome) };
    });
  }

  peek(sessionKey: string, options: ReadOptions): Promise<ReadResult> {
    return this.#call('peek', [sessionKey, options]) as Promise<ReadResult>;
  }

  drain(sessionKey: string, options: ReadOptions): Promise<ReadResult> {
    return this.#call('drain', [sessionKey, options]) as Promise<ReadResult>;
  }

  listSessions(options: { agentId?: string; limit: number }): Promise<{ sessions: SessionRecord[]; more: boolean }> {
    return this.#call('listSessions', [options]) as Promise<{ sessions: SessionRecord[]; more: boolean }>;
  }

  stats(agentId?: string): Promise<StoreStats> {
    return this.#call('stats', agentId === undefined ? [] : [agentId]) as Promise<StoreStats>;
  }

  ack(sessionKey: string, seq: number, detail: TraceDetail): Promise<AckResult> {
    return this.#call('ack', [sessionKey, seq, detail]) as Promise<AckResult>;
  }

  pendingSessionKeys(agentId: string): Promise<string[]> {
    return this.#call('pendingSessionKeys', [agentId]) as Promise<string[]>;
  }

  recordTrace(entries: TraceEntry[]): void {
    if (this.#closing || this.#failure || entries.length === 0) return;
    this.#send({ method: 'recordTrace', entries });
  }

  trace(eventId: string): Promise<TraceEntry[]> {
    return this.#call('trace', [eventId]) as Promise<TraceEntry[]>;
  }

  listTokens(): Promise<TokenRecord[]> {
    return this.#call('listTokens', []) as Promise<TokenRecord[]>;
  }

  createToken(record: TokenRecord): Promise<void> {
    return this.#call('createToken', [record]) as Promise<void>;
  }

  revokeToken(tokenId: string): Promise<TokenRecord | undefined> {
    return this.#call('revokeToken', [tokenId]) as Promise<TokenRecord | undefined>;
  }

  /** Commits so far, for benchmarks (see SqliteEventStore.storeMetrics). */
  storeMetrics(): Promise<CommitMetrics> {
    return this.#call('storeMetrics', []) as Promise<CommitMetrics>;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Queued behind every call made so far, so each of them commits first.
      await this.#call('close', []).catch(() => undefined);
      await this.#exited;
    })();
    return this.#closing;
  }

  #call<M extends keyof StoreCalls>(method: M, args: StoreCalls[M], complete?: (outcome: AppendOutcome) => unknown): Promise<unknown> {
    if (this.#closing) return Promise.reject(new StoreClosedError());
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, complete ? { resolve, reject, complete } : { resolve, reject });
      this.#send({ id, method, args } as ToWorker[number]);
    });
  }

  /** Calls made in one turn of the event loop cross in one message, sent when the turn ends. */
  #send(item: ToWorker[number]): void {
    if (this.#outbox.push(item) > 1) return;
    queueMicrotask(() => {
      const items = this.#outbox;
      this.#outbox = [];
      if (!this.#failure) this.#worker.postMessage(items);
    });
  }

  #receive(message: FromWorker): void {
    switch (message.kind) {
      case 'settled':
        for (const answer of message.settled) {
          const call = this.#pending.get(answer.id);
          if (!call) continue;
          this.#pending.delete(answer.id);
          if ('error' in answer) call.reject(fromWire(answer.error));
          else call.resolve(answer.value);
        }
        return;
      case 'background-error':
        this.#onBackgroundError(fromWire(message.error));
        return;
      default:
        this.#onBackgroundError(new Error(`the store's worker thread sent an unexpected ${message.kind}`));
    }
  }

  #complete({ id, outcome }: CompleteRequest): void {
    let reply: CompleteReply;
    try {
      const complete = this.#pending.get(id)?.complete;
      if (!complete) throw new Error(`no append ${id} is waiting for its routing result`);
      reply = { result: complete(outcome) };
    } catch (error) {
      reply = { error: toWire(error) };
    }
    this.#completions.postMessage(reply);
    Atomics.store(this.#signal, 0, 1);
    Atomics.notify(this.#signal, 0);
  }

  /** The worker is gone: nothing it had will answer, and nothing new can be done. */
  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    if (!this.#closing) this.#onBackgroundError(error);
    for (const call of this.#pending.values()) call.reject(error);
    this.#pending.clear();
  }
}
