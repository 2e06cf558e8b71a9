import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { xzCompressArguments } from "../../src/content/compression.ts";
import { runInProcess } from "./cli-context.ts";

let work: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-cli-level-"));
  // Compressible, so that levels differ in what they make of it.
  await writeFile(join(work, "rootfs.tar"), Buffer.from(randomBytes(768 * 1024).toString("base64")));
  await writeFile(join(work, "initrd"), randomBytes(100_000));
  await writeFile(join(work, "vmlinuz"), randomBytes(100_000));
  const built = await cli("--store-path", "store", "build", "--rootfs-file", "rootfs.tar", "--initramfs-file", "initrd", "--kernel-file", "vmlinuz", "--tag", "ghcr.io/me/os:1");
  expect(built.code, built.stderr).toBe(0);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });

async function filter(command: string, args: string[], input?: Uint8Array): Promise<Buffer> {
  const child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
  const exit = new Promise<number | null>((resolve) => child.once("close", resolve));
  child.stdin.end(input);
  const chunks: Buffer[] = [];
  for await (const chunk of child.stdout) chunks.push(chunk as Buffer);
  if ((await exit) !== 0) throw new Error(`${command} failed`);
  return Buffer.concat(chunks);
}

describe("copy --compression-level", () => {
  it("writes the .tar.xz xz makes at that level on all cores; another level gives other bytes", async () => {
    const sizes: number[] = [];
    for (const level of ["0", "4"]) {
      const run = await cli("copy", "oci:store:ghcr.io/me/os:1", `oci-archive:os-${level}.tar.xz`, "--compression-level", level);
      expect(run.code, run.stderr).toBe(0);
      const bytes = await readFile(join(work, `os-${level}.tar.xz`));
      const tar = await filter("xz", ["-dc"], bytes);
      expect(bytes.equals(await filter("xz", xzCompressArguments(Number(level)), tar))).toBe(true);
      sizes.push(bytes.byteLength);
    }
    expect(sizes[0]).not.toBe(sizes[1]);
  });

  it("refuses a level the archive's compression does not take, a plain .tar, a non-archive destination and a non-number: exit 2, nothing written", async () => {
    for (const [destination, level, message] of [
      ["oci-archive:a.tar.xz", "10", /xz takes 0 to 9/],
      ["oci-archive:a.tar.zst", "20", /zstd takes 1 to 19/],
      ["oci-archive:a.tar", "3", /plain \.tar is not compressed/],
      ["oci:other", "3", /not an oci-archive: destination/],
      ["oci-archive:a.tar.gz", "fast", /expected a whole number/],
    ] as const) {
      const run = await cli("copy", "oci:store:ghcr.io/me/os:1", destination, "--compression-level", level);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    expect((await readdir(work)).sort()).toEqual(["initrd", "rootfs.tar", "store", "vmlinuz"]);
  });
});
