/**
 * Listening to a caller's AbortSignal with one 'abort' listener per signal, however many calls
 * share it: Node warns of a leak (MaxListenersExceededWarning) past ten listeners on one signal,
 * and a plugin that passes its panel's one signal to every call has more than ten in flight.
 */
const listening = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * A call's own stop (its timeout, or its caller's signal passed on), read as an AbortSignal is
 * (`aborted`, `reason`) and listened to through onAbort, with no EventTarget behind it: in a
 * one-shot CLI, an AbortController and its first listener cost ~0.45 ms (Node loads its
 * abort_controller module, then sets up listening), a twentieth of what the CLI adds to `node -e 0`.
 */
export class CallStop {
  aborted = false;
  reason: unknown = undefined;
  readonly #listeners = new Set<() => void>();

  /** Tells every listener, once; later calls do nothing. */
  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    for (const listener of this.#listeners) listener();
    this.#listeners.clear();
  }

  listen(listener: () => void): () => void {
    // Its own entry, so the same function listening twice is told twice, as onAbort's are.
    const own = () => listener();
    this.#listeners.add(own);
    return () => this.#listeners.delete(own);
  }
}

/** What can cut a call or a wait short. */
export type Stop = AbortSignal | CallStop;

/** Runs `listener` once `signal` aborts (not if it has already); returns what stops listening. */
export function onAbort(signal: Stop | undefined, listener: () => void): () => void {
  if (signal === undefined) return noop;
  if (signal instanceof CallStop) return signal.listen(listener);
  let listeners = listening.get(signal);
  if (listeners === undefined) {
    const created = new Set<() => void>();
    listening.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        listening.delete(signal);
        for (const each of created) each();
      },
      { once: true },
    );
    listeners = created;
  }
  const own = () => listener();
  listeners.add(own);
  const registered = listeners;
  return () => registered.delete(own);
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
