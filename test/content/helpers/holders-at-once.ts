import type { withFileLock as WithFileLock } from "../../../src/content/lock.ts";

/** Runs `holders` actions under one lock at once; returns how many ever ran together (1 when it excludes). */
export async function mostHoldersAtOnce(withFileLock: typeof WithFileLock, lockPath: string, holders: number): Promise<number> {
  let running = 0;
  let most = 0;
  await Promise.all(
    Array.from({ length: holders }, () =>
      withFileLock(lockPath, async () => {
        running++;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 5));
        running--;
      }),
    ),
  );
  return most;
}
