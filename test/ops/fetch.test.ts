import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { fetchBootImage, type FetchProgress } from "../../src/ops/fetch.ts";
import { EMPTY_IMAGE_TABLE } from "../oci/fixtures/conformance.ts";

const ONMETAL = {
  config: "application/vnd.onmetal.image.config.v1alpha1+json",
  rootfs: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
  initramfs: "application/vnd.onmetal.image.initramfs.v1alpha1.initramfs",
  vmlinuz: "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz",
};
const encoder = new TextEncoder();

function addJson(store: MemoryStore, mediaType: string, value: unknown, extra: Partial<Descriptor> = {}): Descriptor {
  return store.add(mediaType, encoder.encode(JSON.stringify(value)), extra);
}

/** An onmetal-dialect boot image in a memory store, tagged `boot`. */
async function onmetalImage(store: MemoryStore, commandLine = "console=ttyS0 quiet") {
  const kernel = store.add(ONMETAL.vmlinuz, encoder.encode("kernel bytes ".repeat(1000)));
  const initrd = store.add(ONMETAL.initramfs, encoder.encode("initrd bytes ".repeat(2000)));
  const rootfs = store.add(ONMETAL.rootfs, encoder.encode("rootfs bytes ".repeat(3000)));
  const config = addJson(store, ONMETAL.config, { commandLine });
  const manifest = addJson(store, "application/vnd.oci.image.manifest.v1+json", { schemaVersion: 2, config, layers: [rootfs, initrd, kernel] });
  await store.tag(manifest, "boot");
  return { kernel, initrd, rootfs, config, manifest };
}

describe("fetchBootImage", () => {
  let dir: string;
  let store: MemoryStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ociboot-fetch-"));
    store = new MemoryStore();
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each(EMPTY_IMAGE_TABLE)("refuses $label with NO_BOOT_FILES, saying what it holds, and writes nothing", async (image) => {
    const config = store.add(image.config.mediaType, encoder.encode(image.config.bytes));
    const layers = image.layers.map((layer) => store.add(layer.mediaType, encoder.encode(layer.bytes), layer.annotations ? { annotations: layer.annotations } : {}));
    const manifest = addJson(store, "application/vnd.oci.image.manifest.v1+json", {
      schemaVersion: 2,
      ...(image.artifactType ? { artifactType: image.artifactType } : {}),
      config,
      layers,
    });
    await store.tag(manifest, "other");
    const out = join(dir, "out");
    const failure = fetchBootImage(store, "other", out);
    await expect(failure).rejects.toMatchObject({ code: "NO_BOOT_FILES", message: expect.stringMatching(image.holds) });
    await expect(failure).rejects.toThrow(/ociboot pull or ociboot copy.*--referrer/);
    expect(existsSync(out)).toBe(false);
  });

  it("writes files by role, the exact manifest, SHA256SUMS that sha256sum accepts, and a kexec script", async () => {
    const image = await onmetalImage(store);
    const report = await fetchBootImage(store, "boot", dir);

    expect(report.digest).toBe(image.manifest.digest);
    expect(report.dialect).toBe("onmetal");
    expect(report.commandLine).toBe("console=ttyS0 quiet");
    expect(report.files.map((file) => [file.role, file.name]).sort()).toEqual([
      ["cmdline", "cmdline"],
      ["initrd", "initrd"],
      ["kernel", "vmlinuz"],
      ["rootfs", "rootfs"],
    ]);
    expect((await readFile(join(dir, "vmlinuz"), "utf8")).startsWith("kernel bytes")).toBe(true);
    expect(await readFile(join(dir, "cmdline"), "utf8")).toBe("console=ttyS0 quiet\n");
    const manifestBytes = await readFile(join(dir, "manifest.json"));
    const stored = await store.fetch(image.manifest);
    expect(manifestBytes.toString()).toBe(await new Response(stored.stream).text());
    expect(execFileSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir, encoding: "utf8" })).toMatch(/vmlinuz: OK/);
    expect(await readFile(join(dir, "boot.sh"), "utf8")).toContain('kexec -l "$here/vmlinuz" --initrd="$here/initrd" --command-line="$(cat "$here/cmdline")"');
    expect((await stat(join(dir, "boot.sh"))).mode & 0o111).not.toBe(0);
    expect((await readdir(dir)).filter((name) => name.endsWith(".partial"))).toEqual([]);
  });

  it("is idempotent: a second run keeps verified files and transfers nothing", async () => {
    await onmetalImage(store);
    const first = await fetchBootImage(store, "boot", dir);
    expect(first.transferred).toBeGreaterThan(0);
    const second = await fetchBootImage(store, "boot", dir);
    expect(second.transferred).toBe(0);
    expect(second.files.filter((file) => file.role !== "cmdline").every((file) => file.status === "existing")).toBe(true);
  });

  it("fetches only the requested roles, under overridden names", async () => {
    await onmetalImage(store);
    const report = await fetchBootImage(store, "boot", dir, { roles: ["kernel", "cmdline"], fileNames: { kernel: "bzImage" } });
    expect(report.files.map((file) => file.name).sort()).toEqual(["bzImage", "cmdline"]);
    expect(existsSync(join(dir, "rootfs"))).toBe(false);
  });

  it("refuses a role the image does not have", async () => {
    await onmetalImage(store);
    await expect(fetchBootImage(store, "boot", dir, { roles: ["uki"] })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("pins a digest reference: a manifest that does not hash to it fails as INTEGRITY", async () => {
    const image = await onmetalImage(store);
    store.corrupt(image.manifest.digest, encoder.encode(JSON.stringify({ schemaVersion: 2, config: image.config, layers: [] })));
    await expect(fetchBootImage(store, image.manifest.digest, dir)).rejects.toMatchObject({ code: "INTEGRITY" });
  });

  it("fails as INTEGRITY when a layer is altered, leaving no file under its final name", async () => {
    const image = await onmetalImage(store);
    store.corrupt(image.kernel.digest, encoder.encode("evil".repeat(3250)));
    await expect(fetchBootImage(store, "boot", dir, { concurrency: 1 })).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(existsSync(join(dir, "vmlinuz"))).toBe(false);
    expect(existsSync(join(dir, "vmlinuz.partial"))).toBe(false);
  });

  it("selects from an index by platform", async () => {
    const amd = await onmetalImage(store, "arch=amd64");
    const arm = await onmetalImage(store, "arch=arm64");
    const index = addJson(store, "application/vnd.oci.image.index.v1+json", {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { ...amd.manifest, platform: { os: "linux", architecture: "amd64" } },
        { ...arm.manifest, platform: { os: "linux", architecture: "arm64" } },
      ],
    });
    await store.tag(index, "multi");
    const report = await fetchBootImage(store, "multi", dir, { platform: { os: "linux", architecture: "arm64" } });
    expect(report.digest).toBe(arm.manifest.digest);
    expect(report.indexDigest).toBe(index.digest);
    expect(report.commandLine).toBe("arch=arm64");
  });

  it("reports progress per file", async () => {
    await onmetalImage(store);
    const events: string[] = [];
    const progress: FetchProgress = {
      planned: (files) => events.push(`planned ${files.length}`),
      advanced: () => undefined,
      finished: (name, status) => events.push(`${name} ${status}`),
    };
    await fetchBootImage(store, "boot", dir, { progress });
    expect(events[0]).toBe("planned 3");
    expect(events.slice(1).sort()).toEqual(["initrd downloaded", "rootfs downloaded", "vmlinuz downloaded"]);
  });
});
