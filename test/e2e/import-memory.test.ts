import { execFile, spawn } from "node:child_process";
import { randomFillSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, open, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashFile, makeBootImage, randomBytesFile, type RandomFile, writeOciLayout } from "../harness/images.ts";
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

/** Runs the binary and follows its memory until it exits; `path` may leave xz out, for the fallback decoder. */
async function peakMemoryOf(args: readonly string[], path = process.env["PATH"] ?? ""): Promise<Peak> {
  const child = spawn(OCIBOOT_BINARY, args, { stdio: ["ignore", "ignore", "pipe"], env: { HOME: "/nonexistent", PATH: path } });
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

/**
 * `size` random letters `a` and `b`: one bit per byte, so xz shrinks it about 5×. The WebAssembly
 * decoder's waste showed on such content, where each compressed chunk yields many decoded ones
 * (docs/archives.md, "The WebAssembly decoder"); random bytes, which xz stores as they are, hid it.
 */
async function twoLetterFile(path: string, size: number): Promise<RandomFile> {
  const chunk = Buffer.alloc(MiB);
  const handle = await open(path, "w");
  try {
    for (let written = 0; written < size; written += chunk.length) {
      randomFillSync(chunk);
      for (let index = 0; index < chunk.length; index += 1) chunk[index] = 0x61 + ((chunk[index] as number) & 1);
      await handle.write(chunk, 0, Math.min(chunk.length, size - written));
    }
  } finally {
    await handle.close();
  }
  return { path, ...(await hashFile(path)) };
}

/** The run succeeded, left `file` of the expected size, and stayed within both bounds. */
async function expectBounded(result: Peak, file: string): Promise<void> {
  expect(result.code, result.stderr).toBe(0);
  expect((await stat(file)).size).toBe(ROOTFS_BYTES);
  expect(result.anonBytes).toBeGreaterThan(0);
  expect(result.anonBytes).toBeLessThan(ANON_LIMIT_BYTES);
  expect(result.totalBytes).toBeLessThan(TOTAL_LIMIT_BYTES);
}

describe("import and fetch from an archive keep their memory bounded whatever the archive size (built binary)", () => {
  let work: string;
  let rootfs: RandomFile;
  let letters: RandomFile;

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
    letters = await twoLetterFile(join(work, "letters.img"), ROOTFS_BYTES);
    const lettersLayout = join(work, "letters-layout");
    await writeOciLayout(lettersLayout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { file: letters.path } })],
    });
    await exec("sh", ["-c", `tar -cf - -C "$0" . | xz -T0 -0 > "$1"`, lettersLayout, join(work, "letters.tar.xz")]);
  }, 240_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const name of ["big.tar", "big.tar.gz", "big.tar.xz"]) {
    it(`of ${name}`, async () => {
      const store = join(work, `store-${name}`);
      const result = await peakMemoryOf(["--store-path", store, "import", join(work, name), "--quiet"]);
      await expectBounded(result, join(store, "blobs", "sha256", rootfs.digest.slice("sha256:".length)));
      await rm(store, { recursive: true, force: true });
    }, 120_000);

    it(`and so does fetch from ${name}, read in place and checked again once spooled`, async () => {
      const output = join(work, `fetched-${name}`);
      const result = await peakMemoryOf(["fetch", `oci-archive:${join(work, name)}`, "-o", output, "--quiet"]);
      await expectBounded(result, join(output, "rootfs"));
      await rm(output, { recursive: true, force: true });
    }, 120_000);
  }

  // The fallback where no xz program exists. Made at level 0 (a 256 KiB dictionary), so that the
  // decoder's own memory, which holds the dictionary and is as large as xz's would be, stays out of
  // the figure: what is bounded is what ociboot adds around it. Before the decoder's input was read
  // into reused buffers and its output counted as fresh garbage, these peaked at 55–57 MiB; after,
  // 26–27 MiB, as the other paths.
  it("of a compressible .tar.xz with the WebAssembly decoder", async () => {
    const store = join(work, "store-wasm");
    const result = await peakMemoryOf(["--store-path", store, "import", "--xz-decoder", "wasm", join(work, "letters.tar.xz"), "--quiet"]);
    await expectBounded(result, join(store, "blobs", "sha256", letters.digest.slice("sha256:".length)));
    await rm(store, { recursive: true, force: true });
  }, 180_000);

  it("and so does fetch from it where no xz program exists (the WebAssembly decoder)", async () => {
    const output = join(work, "fetched-wasm");
    const result = await peakMemoryOf(["fetch", `oci-archive:${join(work, "letters.tar.xz")}`, "-o", output, "--quiet"], "/nonexistent");
    await expectBounded(result, join(output, "rootfs"));
    await rm(output, { recursive: true, force: true });
  }, 180_000);
});
