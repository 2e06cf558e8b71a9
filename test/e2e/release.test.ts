import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { VersionReport } from "../../src/cli/commands/version.ts";
import { run, type RunResult } from "../harness/commands.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import packageJson from "../../package.json" with { type: "json" };
import runtimePin from "../../scripts/release-runtime.json" with { type: "json" };

// `npm test` runs `npm run release` before vitest, once per test run (docs/releases.md).
const ROOT = join(import.meta.dirname, "..", "..");
const RELEASE_DIR = join(ROOT, "dist", "release");
const executable = (arch: "x64" | "arm64") => join(RELEASE_DIR, `ociboot-${packageJson.version}-linux-${arch}`);
const QEMU = "/usr/bin/qemu-aarch64-static";
// The arm64 C library and libstdc++ from Debian's cross packages; no binfmt_misc registration needed.
const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

/** ELF e_machine (offset 18): which CPU a file is for, whatever the machine running the test. */
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 } as const;

const KERNEL = "K".repeat(200_000);
const INITRD = "I".repeat(300_000);
const COMMAND_LINE = "console=ttyS0 ro";

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** Runs a release executable as a user would: from an empty folder, no Node, no PATH. */
function runRelease(arch: "x64" | "arm64", args: readonly string[], cwd: string): Promise<RunResult> {
  const env = { PATH: "/nonexistent", HOME: "/nonexistent", NODE_OPTIONS: undefined, NODE_EXTRA_CA_CERTS: undefined };
  // Started through qemu-user by name: the test must not depend on binfmt_misc being registered.
  if (arch === "arm64") return run(QEMU, ["-L", ARM64_SYSROOT, executable(arch), ...args], { cwd, env, timeoutMs: 180_000 });
  return run(executable(arch), args, { cwd, env, timeoutMs: 60_000 });
}

describe("release", () => {
  let work: string;
  let registry: RunningRegistry;
  let bootReference: string;

  beforeAll(async () => {
    for (const arch of ["x64", "arm64"] as const) {
      if (!existsSync(executable(arch))) throw new Error(`${executable(arch)} is missing: run npm run release`);
    }
    work = await mkdtemp(join(tmpdir(), "ociboot-release-"));
    registry = await startRegistry();
    const layout = join(work, "boot-layout");
    await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: KERNEL }, initrd: { bytes: INITRD }, rootfs: { bytes: "R".repeat(100_000) }, commandLine: COMMAND_LINE })],
    });
    ({ reference: bootReference } = await publishWithSkopeo(layout, "v1", registry, "os/boot"));
  }, 120_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("lists both executables and their .xz in a SHA256SUMS that sha256sum -c accepts", () => {
    const names = readFileSync(join(RELEASE_DIR, "SHA256SUMS"), "utf8").trim().split("\n").map((line) => line.split("  ")[1]).sort();
    const base = `ociboot-${packageJson.version}-linux`;
    expect(names).toEqual([`${base}-arm64`, `${base}-arm64.xz`, `${base}-x64`, `${base}-x64.xz`]);
    const checked = execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: RELEASE_DIR, encoding: "utf8" });
    expect(checked.match(/: OK$/gm)).toHaveLength(4);
  });

  describe.each(["x64", "arm64"] as const)("the linux-%s executable", (arch) => {
    let home: string;
    beforeAll(async () => {
      home = join(work, `run-${arch}`);
      await mkdir(home, { recursive: true });
    });

    it("is built for its CPU, stripped, and its .xz unpacks to the same bytes, under 30 MB", () => {
      const bytes = readFileSync(executable(arch));
      expect(bytes.readUInt16LE(18)).toBe(ELF_MACHINE[arch]);
      const sections = execFileSync(arch === "arm64" ? "aarch64-linux-gnu-readelf" : "readelf", ["-S", "-W", executable(arch)], { encoding: "utf8" });
      expect(sections).not.toMatch(/\.debug_info|\.symtab/);
      const unpacked = execFileSync("xz", ["-dc", `${executable(arch)}.xz`], { maxBuffer: 512 * 1024 * 1024 });
      expect(sha256(unpacked)).toBe(sha256(bytes));
      expect(readFileSync(`${executable(arch)}.xz`).byteLength).toBeLessThan(30_000_000);
    });

    it("prints its version, the embedded Node 24 and its platform", async () => {
      const text = await runRelease(arch, ["--version"], home);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout.split("\n")[0]).toBe(`ociboot ${packageJson.version}`);
      const json = await runRelease(arch, ["version", "--json"], home);
      expect(json.code, json.stderr).toBe(0);
      const report = JSON.parse(json.stdout) as VersionReport;
      expect(runtimePin.version).toMatch(/^24\./);
      expect(report.runtime).toEqual({ name: "node", version: runtimePin.version, embedded: true });
      expect(report.platform).toEqual({ os: "linux", architecture: arch === "x64" ? "amd64" : "arm64" });
      expect(report.commit).toMatch(/^[0-9a-f]{40}(-dirty)?$/);
      expect(Object.keys(report.dependencies).sort()).toEqual(Object.keys(packageJson.dependencies).sort());
    });

    it("prints help", async () => {
      const result = await runRelease(arch, ["--help"], home);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toMatch(/Usage: ociboot/);
      expect(result.stdout).toMatch(/^\s+fetch\b/m);
    });

    it("fetches a boot image from the loopback registry and verifies what it wrote", async () => {
      const out = join(home, "boot");
      const fetched = await runRelease(arch, ["fetch", bootReference, "-o", out, "--quiet"], home);
      expect(fetched.code, fetched.stderr).toBe(0);
      expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe(KERNEL);
      expect(await readFile(join(out, "cmdline"), "utf8")).toBe(`${COMMAND_LINE}\n`);
      const verified = await runRelease(arch, ["verify", bootReference, "--dir", out], home);
      expect(verified.code, verified.stderr).toBe(0);

      // And verify is not a rubber stamp: one changed byte fails it with the integrity code.
      const kernel = Buffer.from(KERNEL);
      kernel[0] = 0x4c;
      await writeFile(join(out, "vmlinuz"), kernel);
      const broken = await runRelease(arch, ["verify", bootReference, "--dir", out], home);
      expect(broken.code).toBe(5);
      expect(broken.stdout + broken.stderr).toMatch(/vmlinuz/);
    });
  });

  it("signs every pushed digest with --sign-key, so fetch --key takes the release and another key does not", async () => {
    const key = join(work, "release.pem");
    const publicKey = join(work, "release.pub");
    const otherKey = join(work, "other.pem");
    const otherPublicKey = join(work, "other.pub");
    for (const [secret, pub] of [[key, publicKey], [otherKey, otherPublicKey]] as const) {
      execFileSync("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", secret]);
      execFileSync("openssl", ["pkey", "-in", secret, "-pubout", "-out", pub]);
    }
    const reference = `${registry.host}/tools/signed:${packageJson.version}`;
    const push = await run(process.execPath, [join(ROOT, "scripts", "release.mjs"), "--no-build", "--push", reference, "--sign-key", key], { cwd: ROOT, timeoutMs: 180_000 });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/signed 3 digests/);
    const signed = await runRelease("x64", ["fetch", reference, "--platform", "linux/arm64", "--role", "executable", "--key", publicKey, "-o", join(work, "signed")], work);
    expect(signed.code, signed.stderr).toBe(0);
    expect(sha256(await readFile(join(work, "signed", "ociboot")))).toBe(sha256(readFileSync(executable("arm64"))));
    const refused = await runRelease("x64", ["fetch", reference, "--platform", "linux/arm64", "--role", "executable", "--key", otherPublicKey, "-o", join(work, "refused")], work);
    expect(refused.code, refused.stderr).toBe(11);
    expect(existsSync(join(work, "refused"))).toBe(false);
  });

  it("is published as a multi-arch index that README's install lines fetch, as written", async () => {
    const reference = `${registry.host}/tools/ociboot:${packageJson.version}`;
    const push = await run(process.execPath, [join(ROOT, "scripts", "release.mjs"), "--no-build", "--push", reference], { cwd: ROOT, timeoutMs: 180_000 });
    expect(push.code, push.stderr).toBe(0);
    expect(push.stdout).toMatch(/not signed/);

    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Install\n"));
    const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toMatch(/^RELEASE=/m);
    // Only the release's address changes, and https becomes http: a loopback registry speaks plain HTTP.
    const script = block!.replace(/^RELEASE=\S+/m, `RELEASE=${reference}`).replaceAll("https://", "http://");

    // `ociboot` on PATH is the x64 release executable (this machine's), as an earlier install would be.
    const bin = join(work, "bin");
    await mkdir(bin, { recursive: true });
    await symlink(executable("x64"), join(bin, "ociboot"));
    for (const [arch, ociArch] of [["arm64", "arm64"], ["x64", "amd64"]] as const) {
      const cwd = join(work, `install-${ociArch}`);
      await mkdir(cwd, { recursive: true });
      const installed = await run("bash", ["-euo", "pipefail", "-c", script.replace(/^ARCH=\S+/m, `ARCH=${ociArch}`)], {
        cwd,
        env: { PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`, HOME: "/nonexistent" },
        timeoutMs: 120_000,
      });
      expect(installed.code, installed.stderr).toBe(0);
      const expected = sha256(readFileSync(executable(arch)));
      expect(sha256(await readFile(join(cwd, "ociboot-new", "ociboot")))).toBe(expected);
      expect(sha256(await readFile(join(cwd, "ociboot")))).toBe(expected);
      expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: join(cwd, "ociboot-new"), encoding: "utf8" })).toMatch(/ociboot: OK/);
    }

    // What was installed for arm64 runs there (under qemu-user here).
    const version = await run(QEMU, ["-L", ARM64_SYSROOT, join(work, "install-arm64", "ociboot-new", "ociboot"), "--version"], { timeoutMs: 180_000 });
    expect(version.code, version.stderr).toBe(0);
    expect(version.stdout).toMatch(/^platform: +linux\/arm64$/m);
  }, 400_000);
});
