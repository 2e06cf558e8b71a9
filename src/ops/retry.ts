import { isOcibootError } from "../errors.ts";

const TRANSIENT = ["NETWORK", "TIMEOUT", "RATE_LIMITED"] as const;

/** True for failures that another try may not meet: a cut connection, a timeout, a rate limit. */
export function isTransientFailure(error: unknown): boolean {
  return TRANSIENT.some((code) => isOcibootError(error, code));
}

/** Waits `milliseconds`, or rejects with the abort reason as soon as `signal` aborts. */
export function delay(milliseconds: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, milliseconds);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}
