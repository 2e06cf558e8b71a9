import { execFile } from "node:child_process";
import { mkdtemp, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { buildImage } from "../../src/ops/build.ts";

const exec = promisify(execFile);
const DENO = join(process.cwd(), "node_modules", ".bin", "deno");
let work: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-build-"));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("buildImage", () => {
  it("streams its input files: peak memory stays far below the size of the rootfs", async () => {
    const rootfs = join(work, "rootfs");
    await writeFile(rootfs, "");
    await truncate(rootfs, 512 * 1024 * 1024);
    await writeFile(join(work, "initrd"), "initrd");
    await writeFile(join(work, "vmlinuz"), "kernel");
    const { stdout } = await exec(DENO, ["run", "-A", join("test", "ops", "helpers", "build-peak-memory.ts"), join(work, "store"), rootfs, join(work, "initrd"), join(work, "vmlinuz")]);
    const { peakKiB } = JSON.parse(stdout) as { peakKiB: number };
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB * 1024).toBeLessThan(200 * 1024 * 1024);
    const stored = await stat(new OciLayoutStore(join(work, "store")).blobPath("sha256:9acca8e8c22201155389f65abbf6bc9723edc7384ead80503839f49dcc56d767"));
    expect(stored.size).toBe(512 * 1024 * 1024);
  }, 120_000);

  it("names the missing input file", async () => {
    const store = new OciLayoutStore(join(work, "store"));
    const build = buildImage(store, { rootfs: join(work, "nope"), initramfs: join(work, "nope"), kernel: join(work, "nope") }, { format: "onmetal" });
    await expect(build).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining("Cannot read the rootfs file") });
  });
});
