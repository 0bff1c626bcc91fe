/**
 * Listening to a caller's AbortSignal with one 'abort' listener per signal, however many calls
 * share it: Node warns of a leak (MaxListenersExceededWarning) past ten listeners on one signal,
 * and a plugin that passes its panel's one signal to every call has more than ten in flight.
 * That one listener passes the abort on to a CallStop, which tells the calls.
 */
const listening = new WeakMap<AbortSignal, CallStop>();

/**
 * A stop read as an AbortSignal is (`aborted`, `reason`) and listened to through onAbort, with no
 * EventTarget behind it: a call's own (its timeout, or its caller's signal passed on) costs a
 * one-shot CLI nothing, where an AbortController and its first listener cost it ~0.4 ms (Node
 * loads its abort_controller module, then sets up listening).
 */
export class CallStop {
  #aborted = false;
  #reason: unknown = undefined;
  readonly #listeners = new Set<() => void>();

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Tells every listener, once; later calls do nothing. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    for (const listener of this.#listeners) listener();
    this.#listeners.clear();
  }

  listen(listener: () => void): () => void {
    // Its own entry, so the same function listening twice is told twice.
    const own = () => listener();
    this.#listeners.add(own);
    return () => this.#listeners.delete(own);
  }
}

/**
 * What can cut a call or a wait short. A CallStop never leaves the module copy that made it (each
 * CLI bundle holds its own), so telling the two kinds apart by class is safe.
 */
export type Stop = AbortSignal | CallStop;

/** Runs `listener` once `signal` aborts (not if it has already); returns what stops listening. */
export function onAbort(signal: Stop | undefined, listener: () => void): () => void {
  if (signal === undefined) return noop;
  return (signal instanceof CallStop ? signal : stopOf(signal)).listen(listener);
}

function stopOf(signal: AbortSignal): CallStop {
  let stop = listening.get(signal);
  if (stop === undefined) {
    const created = new CallStop();
    listening.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        listening.delete(signal);
        created.abort(signal.reason);
      },
      { once: true },
    );
    stop = created;
  }
  return stop;
}

/**
 * Resolves after `ms` with true, or with false once `signal` aborts (at once if it has): a wait the
 * caller's abort or the client's close must be able to cut short, through onAbort's one listener.
 */
export function wait(ms: number, signal: Stop | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const stopListening = onAbort(signal, () => {
      clearTimeout(timer);
      resolve(false);
    });
    const timer = setTimeout(() => {
      stopListening();
      resolve(true);
    }, ms);
  });
}

function noop(): void {}
