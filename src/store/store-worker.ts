/**
 * The store's thread: runs SqliteEventStore for a WorkerEventStore on the gateway's thread, so the
 * statements, the commits and their fsync run beside the socket and JSON work instead of in turn
 * with it. Started by WorkerEventStore.open; not a module to import.
 */
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { SqliteEventStore } from './sqlite.js';
import {
  fromWire,
  toWire,
  type AppendArgs,
  type CompleteReply,
  type FromWorker,
  type Settled,
  type StoreCall,
  type ToWorker,
  type WorkerAppendResult,
  type WorkerSetup,
} from './thread-messages.js';
import type { AppendOutcome } from './types.js';

const port = parentPort!;
const { file, options, signal, completions } = workerData as WorkerSetup & { completions: MessagePort };
const flag = new Int32Array(signal);

function post(message: FromWorker): void {
  port.postMessage(message);
}

let store: SqliteEventStore;
try {
  store = SqliteEventStore.open(file, { ...options, onBackgroundError: (error) => post({ kind: 'background-error', error: toWire(error) }) });
  port.on('message', onMessage);
  post({ kind: 'ready' });
} catch (error) {
  // With no listener on the port, the thread ends once this is sent (process.exit could drop it).
  post({ kind: 'open-failed', error: toWire(error) });
  completions.close();
}

/**
 * Answers of one turn go out as one message: a batch of 500 commits settles 500 calls at once,
 * and a message each would cost the gateway's thread 500 tasks.
 */
let settled: Settled[] = [];
function settle(answer: Settled): void {
  if (settled.push(answer) > 1) return;
  queueMicrotask(() => {
    const batch = settled;
    settled = [];
    post({ kind: 'settled', settled: batch });
  });
}

/**
 * The routing result of an append with an idempotency key is stored with it, in its transaction,
 * and only the gateway's thread can build it (it holds the subscribers and the wake timers). So
 * this thread asks, and blocks until the answer is there: the transaction stays open meanwhile,
 * which holds up nothing but this thread's next batch. Appends without a key skip this: their
 * result is built once the answer arrives.
 */
function completeOnMainThread(id: number, outcome: AppendOutcome): unknown {
  Atomics.store(flag, 0, 0);
  completions.postMessage({ id, outcome });
  Atomics.wait(flag, 0, 0);
  const reply = receiveMessageOnPort(completions)?.message as CompleteReply | undefined;
  if (!reply) throw new Error('the gateway thread signalled a routing result but sent none');
  if ('error' in reply) throw fromWire(reply.error);
  return reply.result;
}

async function append(id: number, { event, ingress, idempotency }: AppendArgs): Promise<WorkerAppendResult> {
  const appended = await store.append<unknown>({
    event,
    ingress,
    ...(idempotency ? { idempotency } : {}),
    complete: idempotency ? (outcome) => completeOnMainThread(id, outcome) : () => undefined,
  });
  if (appended.status !== 'stored' || idempotency) return appended;
  return { status: 'stored', outcome: appended.outcome };
}

function call({ id, method, args }: StoreCall): Promise<unknown> {
  switch (method) {
    case 'append':
      return append(id, ...args);
    case 'storeMetrics':
      return Promise.resolve(store.storeMetrics());
    default:
      return (store[method] as (...params: unknown[]) => Promise<unknown>)(...args);
  }
}

function onMessage(items: ToWorker): void {
  for (const item of items) {
    if (item.method === 'recordTrace') {
      store.recordTrace(item.entries);
      continue;
    }
    const { id, method } = item;
    call(item).then(
      (value) => {
        settle({ id, value });
        if (method === 'close') {
          port.off('message', onMessage);
          completions.close();
        }
      },
      (error: unknown) => settle({ id, error: toWire(error) }),
    );
  }
}
