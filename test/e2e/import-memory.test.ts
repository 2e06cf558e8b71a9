import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, randomBytesFile, type RandomFile, writeOciLayout } from "../harness/images.ts";
import { OCIBOOT_BINARY } from "./ociboot-binary.ts";

const exec = promisify(execFile);
const MiB = 1024 * 1024;
/** Far more than ociboot may hold: dead read buffers left to pile up would show (docs/archives.md). */
const ROOTFS_BYTES = 192 * MiB;
/**
 * Peak anonymous memory: the heap, buffers and everything else ociboot allocates, without the
 * executable's own pages, which alone vary between 38 and 64 MB with the page cache's state
 * (docs/archives.md, "Peak memory"). Measured about 25–36 MB; before the fix a `.tar` import held
 * 53 MB (31 MB of dead read buffers) and a `.tar.xz` import up to 52 MB.
 */
const ANON_LIMIT_BYTES = 46 * MiB;
/** All resident memory, executable pages included (VmHWM, exact). */
const TOTAL_LIMIT_BYTES = 120 * MiB;

interface Peak {
  code: number | null;
  stderr: string;
  /** The kernel's own high-water mark of resident memory. */
  totalBytes: number;
  /** The largest anonymous resident memory seen: sampled, so never more than the true peak. */
  anonBytes: number;
}

/** Runs the binary and follows its memory until it exits. */
async function peakMemoryOf(args: readonly string[]): Promise<Peak> {
  const child = spawn(OCIBOOT_BINARY, args, { stdio: ["ignore", "ignore", "pipe"], env: { HOME: "/nonexistent", PATH: process.env["PATH"] ?? "" } });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let totalKiB = 0;
  let anonKiB = 0;
  const field = (status: string, name: string) => Number(new RegExp(`${name}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
  const sample = () => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      totalKiB = Math.max(totalKiB, field(status, "VmHWM"));
      anonKiB = Math.max(anonKiB, field(status, "RssAnon"));
    } catch {
      // Exited meanwhile.
    }
  };
  const timer = setInterval(sample, 2);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
  clearInterval(timer);
  return { code, stderr, totalBytes: totalKiB * 1024, anonBytes: anonKiB * 1024 };
}

describe("import and fetch from an archive keep their memory bounded whatever the archive size (built binary)", () => {
  let work: string;
  let rootfs: RandomFile;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-import-memory-"));
    rootfs = await randomBytesFile(join(work, "rootfs.img"), ROOTFS_BYTES);
    const layout = join(work, "layout");
    await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { file: rootfs.path } })],
    });
    // Made by the plain tools, as a user's archive would be.
    await exec("tar", ["-cf", join(work, "big.tar"), "-C", layout, "."]);
    await exec("sh", ["-c", `xz -T0 -0 -k "$0" && gzip -1 -k "$0"`, join(work, "big.tar")]);
  }, 180_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const name of ["big.tar", "big.tar.gz", "big.tar.xz"]) {
    it(`of ${name}`, async () => {
      const store = join(work, `store-${name}`);
      const result = await peakMemoryOf(["--store-path", store, "import", join(work, name), "--quiet"]);
      expect(result.code, result.stderr).toBe(0);
      expect((await stat(join(store, "blobs", "sha256", rootfs.digest.slice("sha256:".length)))).size).toBe(ROOTFS_BYTES);
      expect(result.anonBytes).toBeGreaterThan(0);
      expect(result.anonBytes).toBeLessThan(ANON_LIMIT_BYTES);
      expect(result.totalBytes).toBeLessThan(TOTAL_LIMIT_BYTES);
      await rm(store, { recursive: true, force: true });
    }, 120_000);

    it(`and so does fetch from ${name}, read in place and checked again once spooled`, async () => {
      const output = join(work, `fetched-${name}`);
      const result = await peakMemoryOf(["fetch", `oci-archive:${join(work, name)}`, "-o", output, "--quiet"]);
      expect(result.code, result.stderr).toBe(0);
      expect((await stat(join(output, "rootfs"))).size).toBe(ROOTFS_BYTES);
      expect(result.anonBytes).toBeGreaterThan(0);
      expect(result.anonBytes).toBeLessThan(ANON_LIMIT_BYTES);
      expect(result.totalBytes).toBeLessThan(TOTAL_LIMIT_BYTES);
      await rm(output, { recursive: true, force: true });
    }, 120_000);
  }
});
