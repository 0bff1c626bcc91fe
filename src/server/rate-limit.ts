/**
 * Failed authentications per address. Past the limit, a wrong or missing token from the address
 * is answered 429 with Retry-After for the rest of the window instead of 401: a client retrying a
 * stale token in a loop is told to back off. A valid token is still let in. Refusing it would
 * protect nothing (a token holds 256 random bits: guessing one gets nowhere at any rate), and on
 * a host where every local client comes from 127.0.0.1, one cron job with a revoked token would
 * keep every agent and CLI out for a minute at a time.
 */
import { AUTH_FAILURE_WINDOW_MS, MAX_AUTH_FAILURES_PER_WINDOW } from '../protocol/constants.js';

/** Addresses remembered at once: bounds memory when failures come from many addresses. */
const MAX_TRACKED_ADDRESSES = 10_000;

interface Window {
  /**
   * On performance.now(), which never steps back: Date.now() can (NTP, a VM resumed), and a window
   * that started "in the future" would lock its address out that much longer and, first in the
   * Map, stop #evictExpired's sweep.
   */
  startedAt: number;
  failures: number;
}

export class AuthFailureLimiter {
  readonly #windows = new Map<string, Window>();
  readonly #limit: number;
  readonly #windowMs: number;

  constructor(limit = MAX_AUTH_FAILURES_PER_WINDOW, windowMs = AUTH_FAILURE_WINDOW_MS) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  /** Seconds the address must wait before trying again, or 0 when it may try now. */
  retryAfterSeconds(address: string, now = performance.now()): number {
    const window = this.#current(address, now);
    if (!window || window.failures < this.#limit) return 0;
    return Math.max(1, Math.ceil((window.startedAt + this.#windowMs - now) / 1000));
  }

  /** Counts a failure; true when it is the one that locks the address out, for the rest of its window. */
  recordFailure(address: string, now = performance.now()): boolean {
    const window = this.#current(address, now);
    if (window) {
      window.failures++;
      return window.failures === this.#limit;
    }
    if (this.#windows.size >= MAX_TRACKED_ADDRESSES) this.#evictExpired(now);
    // Still full: every tracked address is failing right now; forget the oldest (Map order).
    if (this.#windows.size >= MAX_TRACKED_ADDRESSES) this.#windows.delete(this.#windows.keys().next().value!);
    this.#windows.set(address, { startedAt: now, failures: 1 });
    return this.#limit === 1;
  }

  #current(address: string, now: number): Window | undefined {
    const window = this.#windows.get(address);
    if (window && now - window.startedAt >= this.#windowMs) {
      this.#windows.delete(address);
      return undefined;
    }
    return window;
  }

  /**
   * Oldest first: a window is never moved once set, so the Map's order is their start order, and
   * the first one still running ends the sweep. Scanning all of them cost every new failing
   * address ~55 µs once the map was full of live windows.
   */
  #evictExpired(now: number): void {
    for (const [address, window] of this.#windows) {
      if (now - window.startedAt < this.#windowMs) return;
      this.#windows.delete(address);
    }
  }
}
