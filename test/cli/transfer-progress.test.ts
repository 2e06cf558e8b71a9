import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runInProcess } from "./cli-context.ts";

let work: string;
const REF = "ghcr.io/me/os:1";

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-cli-progress-"));
  // Larger than one read chunk, so that progress has several steps to report.
  await writeFile(join(work, "rootfs"), randomBytes(3 * 1024 * 1024));
  await writeFile(join(work, "initrd"), randomBytes(200_000));
  await writeFile(join(work, "vmlinuz"), randomBytes(200_000));
  const built = await cli({}, "--store-path", "store", "build", "--rootfs-file", "rootfs", "--initramfs-file", "initrd", "--kernel-file", "vmlinuz", "--tag", REF);
  expect(built.code, built.stderr).toBe(0);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Every progress step becomes a line: $OCIBOOT_PROGRESS_INTERVAL=0, so no test waits for a clock. */
const cli = (env: Record<string, string>, ...argv: string[]) => runInProcess(argv, { cwd: work, env });
const EVERY_STEP = { OCIBOOT_PROGRESS_INTERVAL: "0" };
const progressLines = (stderr: string) => stderr.split("\n").filter((line) => line.startsWith("progress: "));

describe("progress in logs (stderr not a terminal)", () => {
  it("copy to an archive prints periodic progress lines up to 100% beside its blob lines; -q prints none", async () => {
    const run = await cli(EVERY_STEP, "--store-path", "store", "copy", `oci:store:${REF}`, "oci-archive:os.tar.xz", "--compression-level", "0");
    expect(run.code, run.stderr).toBe(0);
    const lines = progressLines(run.stderr);
    expect(lines.length).toBeGreaterThan(2);
    expect(lines.at(-1)).toMatch(/^progress: 3\.\d+ MiB\/3\.\d+ MiB \(100%\) .*\/s ETA /);
    expect(run.stderr).toMatch(/^4 blobs to transfer, 3\.\d+ MiB$/m);
    expect(run.stderr).toMatch(/^sha256:[0-9a-f]{12} 3\.00 MiB copied$/m);
    const quiet = await cli(EVERY_STEP, "--store-path", "store", "-q", "copy", `oci:store:${REF}`, "oci-archive:quiet.tar.xz", "--compression-level", "0");
    expect(quiet.code, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe("");
  });

  it("without $OCIBOOT_PROGRESS_INTERVAL a short copy prints no progress line (one every 5 s)", async () => {
    const run = await cli({}, "copy", `oci:store:${REF}`, "oci:other:x/y:z");
    expect(run.code, run.stderr).toBe(0);
    expect(progressLines(run.stderr)).toEqual([]);
  });

  for (const archive of ["os.tar.xz", "os.tar.gz", "os.tar"]) {
    it(`import of a ${archive.slice(3)} prints periodic progress lines over the archive's bytes up to 100%; -q prints none`, async () => {
      const written = await cli({}, "copy", `oci:store:${REF}`, `oci-archive:${archive}`, ...(archive === "os.tar" ? [] : ["--compression-level", "1"]));
      expect(written.code, written.stderr).toBe(0);
      const run = await cli(EVERY_STEP, "--store-path", "imported", "import", archive);
      expect(run.code, run.stderr).toBe(0);
      const lines = progressLines(run.stderr);
      expect(lines.length).toBeGreaterThan(1);
      expect(lines.at(-1)).toMatch(/\(100%\)/);
      expect(run.stdout).toMatch(/^Successfully imported [0-9a-f]{64}$/m);
      const quiet = await cli(EVERY_STEP, "--store-path", "quiet", "-q", "import", archive);
      expect(quiet.code, quiet.stderr).toBe(0);
      expect(quiet.stderr).toBe("");
    });
  }
});

describe("bars for a copy that plans once per manifest", () => {
  it("keep one total bar, grown to the sum of every plan", async () => {
    const { createFetchProgress } = await import("../../src/cli/progress.ts");
    const screen: string[] = [];
    const context = { env: {}, stderr: { write: (text: string) => void screen.push(text), isTTY: true, columns: 120 } } as never;
    const progress = createFetchProgress(context, { quiet: false })!;
    progress.planned([{ name: "a", size: 1024 }, { name: "b", size: 1024 }]);
    progress.planned([{ name: "c", size: 2048 }, { name: "d", size: 4096 }]);
    for (const [name, size] of [["a", 1024], ["b", 1024], ["c", 2048], ["d", 4096]] as const) progress.advanced(name, size, size);
    progress.stop();
    const drawn = screen.join("").replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "");
    expect(drawn).toMatch(/total \|█+\| 100% 8\.00 KiB\/8\.00 KiB/);
    expect(drawn).not.toMatch(/total .*\/2\.00 KiB/);
  });
});
