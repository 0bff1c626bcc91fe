/**
 * Listening to a caller's AbortSignal with one 'abort' listener per signal, however many calls
 * share it: Node warns of a leak (MaxListenersExceededWarning) past ten listeners on one signal,
 * and a plugin that passes its panel's one signal to every call has more than ten in flight.
 */
const listening = new WeakMap<AbortSignal, Set<() => void>>();

/** Runs `listener` once `signal` aborts (not if it has already); returns what stops listening. */
export function onAbort(signal: AbortSignal | undefined, listener: () => void): () => void {
  if (signal === undefined) return noop;
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
export function wait(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
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
