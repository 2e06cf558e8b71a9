import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeKey, type TestKey } from "../harness/cosign.ts";
import { runOk } from "../harness/commands.ts";
import { makeBootImage, writeOciLayout } from "../harness/images.ts";
import { startRegistry } from "../harness/registry.ts";
import { OCIBOOT_BINARY, ociboot } from "./ociboot-binary.ts";

/**
 * Archives are read in place (docs/archives.md, "Reading archives in place"): nothing goes to the
 * temporary directory, a compressed archive's large blobs are spooled in the destination folder only.
 */

const MIB = 1024 * 1024;
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-in-place-"));
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** Sum of the sizes of every file under `directory` (0 when it does not exist), as `du` would count them. */
async function bytesUnder(directory: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(directory, { recursive: true });
  } catch {
    return 0;
  }
  let total = 0;
  for (const name of names) {
    const info = await stat(join(directory, name)).catch(() => undefined);
    if (info?.isFile()) total += info.size;
  }
  return total;
}

/** Runs the binary with TMPDIR and OCIBOOT_TMPDIR on a fresh folder, sampling its use every 20 ms: the run's result and the peak. */
async function runWatchingTemporary(name: string, args: string[]): Promise<{ code: number | null; stderr: string; stdout: string; peak: number; temporary: string }> {
  const temporary = join(work, `tmp-${name}`);
  await mkdir(temporary);
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await bytesUnder(temporary));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  const result = await ociboot(args, { env: { TMPDIR: temporary, OCIBOOT_TMPDIR: temporary }, timeoutMs: 600_000 });
  sampling = false;
  await sampler;
  peak = Math.max(peak, await bytesUnder(temporary));
  return { ...result, peak, temporary };
}

/** The build folder `pack --from-build` reads, with a rootfs of `rootfsBytes` random (incompressible) bytes. */
async function buildFolder(name: string, rootfsBytes: number): Promise<{ directory: string; buildName: string }> {
  const directory = join(work, name);
  await mkdir(directory);
  const buildName = "metal-amd64-1592.1";
  const files: Record<string, string | Buffer> = {
    vmlinuz: randomBytes(3 * MIB),
    initrd: randomBytes(5 * MIB),
    "os-release": "ID=gardenlinux\n",
    manifest: "pkg 1\n",
    log: "log\n",
    cmdline: "console=ttyS0\n",
  };
  for (const [suffix, bytes] of Object.entries(files)) await writeFile(join(directory, `${buildName}.${suffix}`), bytes);
  // Written in pieces: the test process need not hold it whole.
  const rootfs = join(directory, `${buildName}.rootfs`);
  await writeFile(rootfs, "");
  for (let written = 0; written < rootfsBytes; written += 16 * MIB) {
    await writeFile(rootfs, randomBytes(Math.min(16 * MIB, rootfsBytes - written)), { flag: "a" });
  }
  return { directory, buildName };
}

function expectNoStrayFiles(names: readonly string[]): void {
  expect(names.filter((name) => name.startsWith(".ociboot-") || name.endsWith(".partial"))).toEqual([]);
}

describe("fetch from a 200 MB .tar.xz that ociboot packed (index.json last)", () => {
  let archive: string;

  beforeAll(async () => {
    const { directory, buildName } = await buildFolder("build-large", 192 * MIB);
    archive = join(work, "large.oci.tar.xz");
    const packed = await ociboot(["pack", "--from-build", directory, "--name", buildName, "-o", archive, "--platform", "linux/amd64", "--compression-level", "0", "--quiet"], {
      timeoutMs: 600_000,
    });
    expect(packed.code, packed.stderr).toBe(0);
    await rm(directory, { recursive: true });
  }, 600_000);

  it("keeps the temporary directory under 64 MiB, spools only in the output folder and leaves no spool file", async () => {
    expect((await stat(archive)).size).toBeGreaterThan(190 * MIB);
    const out = join(work, "out-large");
    const run = await runWatchingTemporary("large", ["fetch", `oci-archive:${archive}`, "-o", out, "--quiet"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.peak).toBeLessThan(64 * MIB);
    expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" }).match(/: OK/g)?.length).toBeGreaterThanOrEqual(4);
    expect((await stat(join(out, "rootfs"))).size).toBe(192 * MIB);
    expectNoStrayFiles(await readdir(out));
    // The same folder again: every file is kept, nothing is spooled twice or left over.
    const again = await runWatchingTemporary("large-again", ["fetch", `oci-archive:${archive}`, "-o", out, "--json"]);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { files: Array<{ status: string }> }).files.filter((file) => file.status !== "written").every((file) => file.status === "existing")).toBe(true);
    expect(again.peak).toBe(0);
    expectNoStrayFiles(await readdir(out));
  }, 600_000);

  it("copy pushes the large blobs straight into a registry and a layout, with nothing in the temporary directory", async () => {
    const registry = await startRegistry();
    try {
      const target = `${registry.host}/air/metal:1`;
      const pushed = await runWatchingTemporary("large-copy", ["copy", `oci-archive:${archive}`, target, "--json"]);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(pushed.peak).toBe(0);
      // Blobs pushed while the archive was read count as copied, as those the walk copied afterwards.
      const { copied } = JSON.parse(pushed.stdout) as { copied: { count: number; bytes: number } };
      expect(copied.bytes).toBeGreaterThan(200 * MIB);
      const out = join(work, "out-large-registry");
      const fetched = await ociboot(["fetch", target, "-o", out, "--quiet"]);
      expect(fetched.code, fetched.stderr).toBe(0);
      expect((await stat(join(out, "rootfs"))).size).toBe(192 * MIB);
      expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" })).toMatch(/rootfs: OK/);
    } finally {
      await registry.stop();
    }
    const layout = join(work, "layout-large");
    const copied = await runWatchingTemporary("large-layout", ["copy", `oci-archive:${archive}`, `oci:${layout}:metal`, "--quiet"]);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.peak).toBe(0);
    const verified = await ociboot(["verify", `oci:${layout}`]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(await readdir(join(layout, ".ociboot", "tmp"))).toEqual([]);
  }, 600_000);

  it("verify needs no disk at all and still reports every item", async () => {
    const run = await runWatchingTemporary("large-verify", ["verify", `oci-archive:${archive}`]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/All \d+ items verified/);
    expect(run.peak).toBe(0);
  }, 600_000);
});

describe("a plain .tar made by skopeo, read by offset", () => {
  let archive: string;
  let rootfs: Buffer;

  beforeAll(async () => {
    rootfs = randomBytes(6 * MIB);
    const layout = join(work, "layout-plain");
    await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: randomBytes(MIB) }, initrd: { bytes: randomBytes(MIB) }, rootfs: { bytes: rootfs }, commandLine: "console=ttyS0" })],
    });
    archive = join(work, "plain.oci.tar");
    await runOk("skopeo", ["copy", "--insecure-policy", `oci:${layout}:v1`, `oci-archive:${archive}:v1`]);
  }, 120_000);

  it("fetch and verify leave the temporary directory empty", async () => {
    const out = join(work, "out-plain");
    const fetched = await runWatchingTemporary("plain-fetch", ["fetch", `oci-archive:${archive}`, "-o", out, "--quiet"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(fetched.peak).toBe(0);
    // Buffer.equals: a deep toEqual of 6 MiB takes a minute.
    expect((await readFile(join(out, "rootfs"))).equals(rootfs)).toBe(true);
    expectNoStrayFiles(await readdir(out));
    const verified = await runWatchingTemporary("plain-verify", ["verify", `oci-archive:${archive}`]);
    expect(verified.code, verified.stderr).toBe(0);
    expect(verified.stdout).toMatch(/All 5 items verified/);
    expect(verified.peak).toBe(0);
  });

  it("refuses a tampered blob (exit 5) and leaves no file under its name", async () => {
    const bytes = await readFile(archive);
    const at = bytes.indexOf(rootfs.subarray(0, 4096)) + 3 * MIB;
    expect(at).toBeGreaterThan(3 * MIB);
    bytes[at] = (bytes[at] ?? 0) ^ 0xff;
    const tampered = join(work, "tampered.oci.tar");
    await writeFile(tampered, bytes);
    const out = join(work, "out-tampered");
    const result = await runWatchingTemporary("plain-tampered", ["fetch", `oci-archive:${tampered}`, "-o", out, "--quiet"]);
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/content hashes to sha256:/);
    expect(existsSync(join(out, "rootfs"))).toBe(false);
    expect(existsSync(join(out, "rootfs.partial"))).toBe(false);
    expect(result.peak).toBe(0);
    const verified = await ociboot(["verify", `oci-archive:${tampered}`]);
    expect(verified.code).toBe(5);
    expect(verified.stdout.match(/^FAILED /gm)).toHaveLength(1);
  });
});

describe("--key with a compressed archive", () => {
  let archive: string;
  let signer: TestKey;
  let stranger: TestKey;

  beforeAll(async () => {
    [signer, stranger] = await Promise.all([makeKey(work, "ed25519", "signer"), makeKey(work, "p-256", "stranger")]);
    const { directory, buildName } = await buildFolder("build-signed", 12 * MIB);
    archive = join(work, "signed.oci.tar.gz");
    const packed = await ociboot(["pack", "--from-build", directory, "--name", buildName, "-o", archive, "--platform", "linux/amd64", "--sign-key", signer.privateKey, "--quiet"]);
    expect(packed.code, packed.stderr).toBe(0);
  }, 120_000);

  it("writes nothing into the output folder when the signature fails, and fetches when it holds", async () => {
    const refusedOut = join(work, "out-refused");
    let appeared = false;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        appeared ||= existsSync(refusedOut);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    const refused = await ociboot(["fetch", `oci-archive:${archive}`, "--key", stranger.publicKey, "-o", refusedOut]);
    watching = false;
    await watcher;
    expect(refused.code).toBe(11);
    expect(appeared || existsSync(refusedOut)).toBe(false);

    const out = join(work, "out-signed");
    const fetched = await ociboot(["fetch", `oci-archive:${archive}`, "--key", signer.publicKey, "-o", out, "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer.fingerprint).toBe(signer.fingerprint);
    expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: out, encoding: "utf8" })).toMatch(/rootfs: OK/);
    expectNoStrayFiles(await readdir(out));
  });

  it("fetch --role rootfs -o - streams a blob the pass dropped, read again from the archive and verified", async () => {
    const piped = execFileSync("sh", ["-c", `"$0" fetch "oci-archive:$1" --role rootfs --key "$2" -o - | sha256sum`, OCIBOOT_BINARY, archive, signer.publicKey], {
      encoding: "utf8",
      env: { PATH: process.env["PATH"] ?? "", HOME: "/nonexistent" },
    });
    // The rootfs the test before fetched into a folder and checked.
    const fetchedRootfs = execFileSync("sha256sum", [join(work, "out-signed", "rootfs")], { encoding: "utf8" });
    expect(piped.slice(0, 64)).toBe(fetchedRootfs.slice(0, 64));
  });

  it("copy into a layout changes nothing there when the signature fails", async () => {
    const target = join(work, "layout-refused");
    const refused = await ociboot(["copy", `oci-archive:${archive}`, `oci:${target}:x`, "--key", stranger.publicKey]);
    expect(refused.code).toBe(11);
    expect(existsSync(target)).toBe(false);
    const copied = await ociboot(["copy", `oci-archive:${archive}`, `oci:${target}:x`, "--key", signer.publicKey, "--quiet"]);
    expect(copied.code, copied.stderr).toBe(0);
    const verified = await ociboot(["verify", `oci:${target}`]);
    expect(verified.code, verified.stderr).toBe(0);
  });
});
