import { describe, expect, it } from "vitest";
import type { CliContext } from "../../src/cli/context.ts";
import { createFetchProgress } from "../../src/cli/progress.ts";

function contextWith(isTTY: boolean): { context: CliContext; stderr: string[] } {
  const stderr: string[] = [];
  const context = {
    stderr: { write: (text: string) => void stderr.push(text), isTTY, columns: 100 },
  } as unknown as CliContext;
  return { context, stderr };
}

describe("fetch progress", () => {
  it("prints nothing with --quiet", () => {
    const { context } = contextWith(true);
    expect(createFetchProgress(context, { quiet: true })).toBeUndefined();
  });

  it("prints periodic plain lines in logs, at most one per interval, and one line per finished file", () => {
    const { context, stderr } = contextWith(false);
    let now = 0;
    const progress = createFetchProgress(context, { quiet: false, lineInterval: 5, now: () => now })!;
    progress.planned([
      { name: "vmlinuz", size: 100 * 1024 * 1024 },
      { name: "rootfs", size: 300 * 1024 * 1024 },
    ]);
    now = 1000;
    progress.advanced("rootfs", 50 * 1024 * 1024, 300 * 1024 * 1024);
    now = 5000;
    progress.advanced("rootfs", 100 * 1024 * 1024, 300 * 1024 * 1024);
    now = 6000;
    progress.advanced("rootfs", 120 * 1024 * 1024, 300 * 1024 * 1024);
    progress.finished("vmlinuz", "existing");
    expect(stderr).toEqual([
      "fetching 2 file(s), 400 MiB\n",
      "progress: 100 MiB/400 MiB (25%) 20.0 MiB/s ETA 15s\n",
      "vmlinuz: 100 MiB kept (already verified)\n",
    ]);
  });

  it("draws bars on a terminal", () => {
    const { context, stderr } = contextWith(true);
    const progress = createFetchProgress(context, { quiet: false })!;
    progress.planned([{ name: "vmlinuz", size: 1024 }]);
    progress.advanced("vmlinuz", 1024, 1024);
    progress.finished("vmlinuz", "downloaded");
    const screen = stderr.join("");
    expect(screen).toMatch(/vmlinuz \|█+\| 100% 1\.00 KiB\/1\.00 KiB/);
  });

  it("stop() ends the bars before every file finished: the cursor shows again, the next line is fresh, a second stop draws nothing", () => {
    const { context, stderr } = contextWith(true);
    const progress = createFetchProgress(context, { quiet: false })!;
    progress.planned([
      { name: "vmlinuz", size: 1024 },
      { name: "rootfs", size: 4096 },
    ]);
    progress.advanced("rootfs", 1024, 4096);
    progress.stop();
    const screen = stderr.join("");
    expect(screen).toContain("\x1b[?25h");
    expect(screen.endsWith("\n")).toBe(true);
    const drawn = stderr.length;
    progress.stop();
    expect(stderr.length).toBe(drawn);
  });
});
