import { describe, expect, it } from "vitest";
import { OcibootError } from "../src/errors.ts";
import { DEFAULT_RETRY_POLICY, isRetryableError, isRetryableStatus, RetryChain, sleep } from "../src/retry.ts";

/** An abort signal that counts its listeners, to see that a finished sleep leaves none behind. */
function countingSignal(): { signal: AbortSignal; controller: AbortController; listeners: () => number } {
  const controller = new AbortController();
  const signal = controller.signal;
  let count = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...args: Parameters<AbortSignal["addEventListener"]>) => {
    count++;
    add(...args);
  }) as AbortSignal["addEventListener"];
  signal.removeEventListener = ((...args: Parameters<AbortSignal["removeEventListener"]>) => {
    count--;
    remove(...args);
  }) as AbortSignal["removeEventListener"];
  return { signal, controller, listeners: () => count };
}

describe("sleep", () => {
  it("leaves no abort listener behind once it has waited", async () => {
    const { signal, listeners } = countingSignal();
    for (let round = 0; round < 3; round++) await sleep(1, signal);
    expect(listeners()).toBe(0);
  });

  it("rejects with the abort reason at once, and at once when already aborted", async () => {
    const { signal, controller } = countingSignal();
    const reason = new OcibootError("INTERRUPTED", "Interrupted");
    const waiting = sleep(60_000, signal);
    controller.abort(reason);
    await expect(waiting).rejects.toBe(reason);
    await expect(sleep(60_000, signal)).rejects.toBe(reason);
  });
});

describe("RetryChain", () => {
  it("counts an error object once however many layers report it, and stops at the policy's attempts", () => {
    const chain = new RetryChain({ attempts: 3 });
    const first = new OcibootError("NETWORK", "reset");
    expect(chain.shouldRetry(first)).toBe(true);
    expect(chain.shouldRetry(first)).toBe(true);
    expect(chain.failures).toBe(1);
    expect(chain.shouldRetry(new OcibootError("TIMEOUT", "slow"))).toBe(true);
    expect(chain.shouldRetry(new OcibootError("NETWORK", "reset again"))).toBe(false);
    expect(chain.failures).toBe(3);
  });

  it("never retries what another attempt cannot change", () => {
    const chain = new RetryChain();
    for (const code of ["INTEGRITY", "UNAUTHORIZED", "DENIED", "NOT_FOUND", "TLS", "USAGE"] as const) {
      expect(chain.shouldRetry(new OcibootError(code, code))).toBe(false);
    }
    expect(chain.failures).toBe(0);
    expect(isRetryableError(new Error("plain"))).toBe(false);
    expect([429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([200, 400, 401, 404, 501, 505].some(isRetryableStatus)).toBe(false);
  });

  it("backs off exponentially within the upper half of each step, capped, and caps Retry-After", () => {
    const low = new RetryChain({}, { random: () => 0 });
    const high = new RetryChain({}, { random: () => 0.999999 });
    const steps: Array<[number, number]> = [];
    for (let failure = 1; failure <= 8; failure++) {
      low.failed();
      high.failed();
      steps.push([low.delayMs(), high.delayMs()]);
    }
    const { baseDelayMs, maxDelayMs, maxRetryAfterMs } = DEFAULT_RETRY_POLICY;
    steps.forEach(([least, most], index) => {
      const ceiling = Math.min(maxDelayMs, baseDelayMs * 2 ** index);
      expect(least).toBe(ceiling / 2);
      expect(most).toBe(ceiling);
    });
    expect(low.delayMs(5_000)).toBe(5_000);
    expect(low.delayMs(3_600_000)).toBe(maxRetryAfterMs);
  });

  it("waits through the injected sleep with the abort signal", async () => {
    const waits: number[] = [];
    const chain = new RetryChain({ baseDelayMs: 100 }, { random: () => 0.5, sleep: async (milliseconds) => void waits.push(milliseconds) });
    chain.failed();
    await chain.wait();
    chain.failed();
    await chain.wait(undefined, 1234);
    expect(waits).toEqual([75, 1234]);
  });
});
