import { isOcibootError } from "./errors.ts";

/**
 * The one retry policy of ociboot (docs/registries.md#retries): how many attempts a request chain
 * gets, how long to wait between them, and which failures are worth another attempt. A chain is
 * everything done to get one piece of content — the HTTP request, its retries, and the resumed
 * transfers after a cut — so the layers that each see a failure share one count instead of
 * multiplying theirs.
 */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** Backoff before the second attempt; doubles each time. */
  baseDelayMs: number;
  /** Upper bound of a backoff delay. */
  maxDelayMs: number;
  /** Upper bound honoured for a `Retry-After` header. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: Readonly<RetryPolicy> = {
  attempts: 5,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
};

/** Waits `milliseconds`, or rejects with the signal's reason when aborted. */
export type Sleep = (milliseconds: number, signal?: AbortSignal) => Promise<void>;

/** The only sleep: a timer that an abort cancels, and whose abort listener goes away with it. */
export const sleep: Sleep = (milliseconds, signal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, milliseconds);
    signal?.addEventListener("abort", onAbort, { once: true });
  });

/** Error codes another attempt may not meet: a cut or refused connection, a timeout, a rate limit. */
const RETRYABLE_CODES = ["NETWORK", "TIMEOUT", "RATE_LIMITED"] as const;

/** True for failures worth another attempt (never integrity, auth, not-found or TLS failures). */
export function isRetryableError(error: unknown): boolean {
  return RETRYABLE_CODES.some((code) => isOcibootError(error, code));
}

/** 429 and 5xx, except 501 and 505, which a second try cannot change. */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/**
 * Parses `Retry-After` (RFC 9110 §10.2.3): delay seconds or an HTTP date. Returns milliseconds,
 * or undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}

/** What a chain needs from outside; injectable for tests. */
export interface RetryEnvironment {
  sleep?: Sleep;
  /** A number in [0, 1) for jitter. */
  random?: () => number;
}

/**
 * The attempts of one request chain. Whoever sees a failure first records it; an error object
 * that travels up through several layers is counted once, so however many layers retry, a chain
 * makes at most `policy.attempts` requests.
 */
export class RetryChain {
  readonly policy: Readonly<RetryPolicy>;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #counted = new WeakSet<object>();
  #failures = 0;

  constructor(policy: Partial<RetryPolicy> = {}, environment: RetryEnvironment = {}) {
    this.policy = { ...DEFAULT_RETRY_POLICY, ...policy };
    this.#sleep = environment.sleep ?? sleep;
    this.#random = environment.random ?? Math.random;
  }

  /** Failed attempts recorded so far. */
  get failures(): number {
    return this.#failures;
  }

  /**
   * Records a failed attempt (an error object once, however often it is reported; a failed status
   * has no object) and says whether another attempt may follow.
   */
  failed(error?: unknown): boolean {
    if (typeof error === "object" && error !== null) {
      if (!this.#counted.has(error)) {
        this.#counted.add(error);
        this.#failures++;
      }
    } else {
      this.#failures++;
    }
    return this.#failures < Math.max(1, this.policy.attempts);
  }

  /** Records `error` and says whether to try again: only for retryable errors with attempts left. */
  shouldRetry(error: unknown, signal?: AbortSignal): boolean {
    if (signal?.aborted || !isRetryableError(error)) return false;
    return this.failed(error);
  }

  /**
   * The wait before the next attempt: `Retry-After` when the server sent one (capped), else
   * exponential backoff with jitter over the upper half, which spreads a fleet of clients that
   * failed together without ever retrying at once.
   */
  delayMs(retryAfterMs?: number): number {
    if (retryAfterMs !== undefined) return Math.min(retryAfterMs, this.policy.maxRetryAfterMs);
    const ceiling = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** Math.max(0, this.#failures - 1));
    return Math.round(ceiling / 2 + (this.#random() * ceiling) / 2);
  }

  /** Waits {@link delayMs}; rejects at once when `signal` aborts. */
  wait(signal?: AbortSignal, retryAfterMs?: number): Promise<void> {
    return this.#sleep(this.delayMs(retryAfterMs), signal);
  }
}
