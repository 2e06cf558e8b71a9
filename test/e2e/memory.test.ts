import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, randomBytesFile, writeOciLayout, type RandomFile } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { OCIBOOT_BINARY } from "./ociboot-binary.ts";

const MiB = 1024 * 1024;
/** Larger than anything ociboot may hold: a copy of the blob in memory would show. */
const BLOB_BYTES = 192 * MiB;
/** The executable's own pages are about 50 MB of this. */
const PEAK_LIMIT_BYTES = 140 * MiB;

/** Runs the binary and samples its peak resident memory (VmHWM) until it exits. */
async function peakMemoryOf(args: readonly string[]): Promise<{ code: number | null; peakBytes: number; stderr: string }> {
  const child = spawn(OCIBOOT_BINARY, args, { stdio: ["ignore", "ignore", "pipe"], env: { HOME: "/nonexistent", PATH: process.env["PATH"] ?? "" } });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let peakKiB = 0;
  const sample = () => {
    try {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      if (match?.[1]) peakKiB = Math.max(peakKiB, Number(match[1]));
    } catch {
      // Exited meanwhile.
    }
  };
  const timer = setInterval(sample, 5);
  const code = await new Promise<number | null>((resolve) => child.on("exit", (exitCode) => resolve(exitCode)));
  clearInterval(timer);
  return { code, peakBytes: peakKiB * 1024, stderr };
}

describe("memory stays bounded whatever the blob size (built binary, real registry)", () => {
  let work: string;
  let registry: RunningRegistry;
  let rootfs: RandomFile;
  let reference: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-memory-"));
    registry = await startRegistry();
    rootfs = await randomBytesFile(join(work, "rootfs.img"), BLOB_BYTES);
    const layout = join(work, "layout");
    await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { file: rootfs.path } })],
    });
    await publishWithSkopeo(layout, "v1", registry, "os/big");
    reference = `${registry.host}/os/big:v1`;
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("fetch", async () => {
    const out = join(work, "fetched");
    const result = await peakMemoryOf(["fetch", reference, "-o", out, "--quiet"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await stat(join(out, "rootfs"))).size).toBe(BLOB_BYTES);
    expect(result.peakBytes).toBeGreaterThan(0);
    expect(result.peakBytes).toBeLessThan(PEAK_LIMIT_BYTES);
  }, 120_000);

  it("pull into a local store (a consumer that stores chunks rather than a download)", async () => {
    const store = join(work, "store");
    const result = await peakMemoryOf(["pull", reference, "--store-path", store]);
    expect(result.code, result.stderr).toBe(0);
    expect((await stat(join(store, "blobs", "sha256", rootfs.digest.slice("sha256:".length)))).size).toBe(BLOB_BYTES);
    expect(result.peakBytes).toBeGreaterThan(0);
    expect(result.peakBytes).toBeLessThan(PEAK_LIMIT_BYTES);
  }, 120_000);
  it("import of a .tar.gz (zlib keeps to the pace of the store; DecompressionStream did not)", async () => {
    const archive = join(work, "big.oci.tar.gz");
    const exported = await peakMemoryOf(["copy", reference, `oci-archive:${archive}`, "--compression-level", "1", "--quiet"]);
    expect(exported.code, exported.stderr).toBe(0);
    const result = await peakMemoryOf(["--store-path", join(work, "gz-store"), "import", archive, "--quiet"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await stat(join(work, "gz-store", "blobs", "sha256", rootfs.digest.slice("sha256:".length)))).size).toBe(BLOB_BYTES);
    expect(result.peakBytes).toBeGreaterThan(0);
    expect(result.peakBytes).toBeLessThan(PEAK_LIMIT_BYTES);
  }, 120_000);
});
