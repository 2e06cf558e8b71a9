import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { archiveLayout, makeBootImage, publishWithSkopeo, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { plainScreen, runInPty } from "../harness/pty.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { startSlowRelay, type SlowRelay } from "../harness/slow-relay.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const ENV = { ...process.env, HOME: "/nonexistent" };

/** The message is the last thing on the screen, on a line of its own, after the bars stopped drawing. */
function expectEndsWithMessage(screen: string, message: RegExp): void {
  const lastLine = screen.trimEnd().split("\n").at(-1) ?? "";
  expect(plainScreen(lastLine)).toMatch(message);
  expect(lastLine.startsWith("ociboot: ")).toBe(true);
}

/**
 * The process must end, on a terminal, whatever happens after the progress display started:
 * Ctrl-C, a corrupted blob, a lost network. Each case runs the built binary on a real
 * pseudo-terminal; a hang would end in `timeout`'s 124 instead of the documented code. The
 * interrupts land mid-transfer by construction: a slow relay (about 1.3 MB/s per connection)
 * carries megabytes more than it has relayed when the signal is sent.
 */
describe("on a terminal, every way out ends the process with its code", () => {
  let work: string;
  let registry: RunningRegistry;
  let relay: SlowRelay;
  let layout: WrittenLayout;
  let reference: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-terminal-"));
    registry = await startRegistry();
    const image = (name: string) =>
      makeBootImage({
        dialect: "onmetal",
        tag: name,
        kernel: { bytes: randomBytes(2 * MiB) },
        initrd: { bytes: randomBytes(1 * MiB) },
        rootfs: { bytes: randomBytes(8 * MiB) },
        commandLine: `console=ttyS0 ${name}`,
      });
    layout = await writeOciLayout(join(work, "layout"), { manifests: [image("slow"), image("corrupt")] });
    await publishWithSkopeo(layout.directory, "slow", registry, "os/boot");
    await publishWithSkopeo(layout.directory, "corrupt", registry, "os/corrupt");
    relay = await startSlowRelay(registry.host, { delayMs: 50 });
    reference = `${relay.host}/os/boot:slow`;
  }, 120_000);
  afterAll(async () => {
    await relay?.stop();
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Resolves once the relay has carried `bytes` more in the given direction than when called. */
  const relayed = (direction: "down" | "up", bytes: number) => {
    const count = () => (direction === "down" ? relay.bytesToClients() : relay.bytesToTarget());
    const start = count();
    return async () => count() - start >= bytes;
  };

  it("fetch: one Ctrl-C stops the bars, prints Interrupted on a fresh line, exits 130 and keeps .partial files for the next run", async () => {
    const out = join(work, "fetch-interrupted");
    const run = runInPty(OCIBOOT_BINARY, ["fetch", reference, "-o", out], { env: ENV, timeoutSeconds: 60 });
    // Some of the rootfs on disk (what a resume builds on), most of its 8 MiB still to come.
    const partial = join(out, "rootfs.partial");
    await run.waitFor(async () => ((await stat(partial).catch(() => undefined))?.size ?? 0) >= 64 * KiB, "rootfs.partial on disk");
    await run.waitForScreen(/rootfs\s+\|/);
    await run.interrupt();
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(130);
    expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
    const left = await readdir(out);
    expect(left).toContain("rootfs.partial");
    expect(left).not.toContain("rootfs");

    // The next run builds on what the interrupted one kept.
    const resumed = await ociboot(["fetch", `${registry.host}/os/boot:slow`, "-o", out, "--json"]);
    expect(resumed.code, resumed.stderr).toBe(0);
    const files = (JSON.parse(resumed.stdout) as { files: Array<{ role: string; status: string }> }).files;
    expect(files.find((file) => file.role === "rootfs")?.status).toBe("resumed");
  }, 90_000);

  it("fetch: a corrupted blob ends the display, prints the integrity error on a fresh line and exits 5", async () => {
    const rootfs = layout.manifests[1]!.layers[0]!;
    const path = registry.blobDataPath(rootfs.digest);
    const bytes = await readFile(path);
    bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 0xff, bytes.length - 1);
    await writeFile(path, bytes);
    const out = join(work, "fetch-corrupt");
    const run = runInPty(OCIBOOT_BINARY, ["fetch", `${registry.host}/os/corrupt:corrupt`, "-o", out], { env: ENV, timeoutSeconds: 60 });
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(5);
    expect(screen).toMatch(/rootfs\s+\|/);
    expectEndsWithMessage(screen, /digest|sha256/i);
    expect(existsSync(join(out, "rootfs"))).toBe(false);
  }, 90_000);

  it("fetch: a network lost mid-transfer ends, after bounded retries, with the network error on a fresh line and exit 7", async () => {
    const lost = await startSlowRelay(registry.host, { delayMs: 50 });
    try {
      const out = join(work, "fetch-lost");
      const run = runInPty(OCIBOOT_BINARY, ["fetch", `${lost.host}/os/boot:slow`, "-o", out], { env: ENV, timeoutSeconds: 80 });
      await run.waitFor(async () => lost.bytesToClients() >= 512 * KiB, "512 KiB downloaded");
      await lost.stop();
      const { code, screen } = await run.exited;
      expect(code, screen).toBe(7);
      expectEndsWithMessage(screen, /connection refused|connection/i);
    } finally {
      await lost.stop();
    }
  }, 120_000);

  it("copy to .tar.xz: Ctrl-C reaches xz too, yet the answer is Interrupted and 130, and no file is left", async () => {
    const out = join(work, "copy-xz");
    await mkdir(out);
    const run = runInPty(OCIBOOT_BINARY, ["copy", reference, `oci-archive:${join(out, "boot.oci.tar.xz")}`], { env: ENV, timeoutSeconds: 60 });
    await run.waitFor(relayed("down", 512 * KiB), "512 KiB downloaded");
    await run.waitFor(async () => existsSync(join(out, "boot.oci.tar.xz.partial")), "the archive's .partial");
    await run.interrupt();
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(130);
    expect(plainScreen(screen)).not.toMatch(/EPIPE|internal error/);
    expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
    expect(await readdir(out)).toEqual([]);
  }, 90_000);

  it("copy into a layout: one Ctrl-C, exit 130, the layout names no half-copied image", async () => {
    const out = join(work, "copy-layout");
    const run = runInPty(OCIBOOT_BINARY, ["copy", reference, `oci:${out}:boot`], { env: ENV, timeoutSeconds: 60 });
    await run.waitFor(relayed("down", 512 * KiB), "512 KiB downloaded");
    await run.interrupt();
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(130);
    expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
    const index = await readFile(join(out, "index.json"), "utf8").catch(() => "{}");
    expect(index).not.toContain('"boot"');
  }, 90_000);

  it("pull: one Ctrl-C, exit 130, the store names no half-pulled image", async () => {
    const store = join(work, "pull-store");
    const run = runInPty(OCIBOOT_BINARY, ["--store-path", store, "pull", reference], { env: ENV, timeoutSeconds: 60 });
    await run.waitFor(relayed("down", 512 * KiB), "512 KiB downloaded");
    await run.interrupt();
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(130);
    expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
    const index = await readFile(join(store, "index.json"), "utf8").catch(() => "{}");
    expect(index).not.toContain(reference);
  }, 90_000);

  it("push: one Ctrl-C mid-upload, exit 130, the tag is not created", async () => {
    const store = join(work, "push-store");
    const target = `${relay.host}/os/pushed:v1`;
    const pulled = await ociboot(["--store-path", store, "pull", `${registry.host}/os/boot:slow`]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const tagged = await ociboot(["--store-path", store, "tag", `${registry.host}/os/boot:slow`, target]);
    expect(tagged.code, tagged.stderr).toBe(0);
    const run = runInPty(OCIBOOT_BINARY, ["--store-path", store, "push", target], { env: ENV, timeoutSeconds: 60 });
    await run.waitFor(relayed("up", 512 * KiB), "512 KiB uploaded");
    await run.interrupt();
    const { code, screen } = await run.exited;
    expect(code, screen).toBe(130);
    expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
    const tags = await fetch(`${registry.url}/v2/os/pushed/tags/list`);
    expect(tags.status === 404 || !((await tags.json()) as { tags?: string[] }).tags?.includes("v1")).toBe(true);
  }, 90_000);
});

describe("import: Ctrl-C", () => {
  it("ends an import that waits for the store's lock: exit 130 at once, index.json untouched", async () => {
    const work = await mkdtemp(join(tmpdir(), "ociboot-e2e-import-int-"));
    try {
      const rootfs = randomBytes(2 * MiB);
      const layout = await writeOciLayout(join(work, "layout"), {
        manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: rootfs } })],
      });
      const archive = join(work, "boot.oci.tar");
      await archiveLayout(layout.directory, archive);
      const store = join(work, "store");
      await writeFile(join(work, "vmlinuz"), "a kernel");
      const file = join(work, "vmlinuz");
      const built = await ociboot(["--store-path", store, "build", "--kernel-file", file, "--initramfs-file", file, "--rootfs-file", file, "--tag", "x/y:z"]);
      expect(built.code, built.stderr).toBe(0);
      const indexBefore = await readFile(join(store, "index.json"), "utf8");
      // This live test process holds the store's lock, as a concurrent `tag` would: the import
      // stores every blob, then waits for the lock to add its entries.
      await mkdir(join(store, ".ociboot"), { recursive: true });
      await writeFile(join(store, ".ociboot", "index.lock"), JSON.stringify({ pid: process.pid, host: hostname(), token: "held-by-the-test" }));
      const rootfsBlob = join(store, "blobs", "sha256", layout.manifests[0]!.layers[0]!.digest.slice("sha256:".length));
      const run = runInPty(OCIBOOT_BINARY, ["--store-path", store, "import", archive], { env: ENV, timeoutSeconds: 25 });
      await run.waitFor(async () => existsSync(rootfsBlob), "the rootfs blob in the store");
      await run.interrupt();
      const { code, screen } = await run.exited;
      expect(code, screen).toBe(130);
      expectEndsWithMessage(screen, /^ociboot: Interrupted$/);
      expect(await readFile(join(store, "index.json"), "utf8")).toBe(indexBefore);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});
