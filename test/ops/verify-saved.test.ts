import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import type { Digest } from "../../src/oci/digest.ts";
import { fetchBootImage } from "../../src/ops/fetch.ts";
import { readSavedFetch, savedFetchMatches, verifySavedDirectory } from "../../src/ops/verify.ts";

const encoder = new TextEncoder();

describe("verifySavedDirectory: a fetched folder checked against what it saved", () => {
  let dir: string;
  let store: MemoryStore;
  let manifestDigest: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "ociboot-verify-saved-"));
    store = new MemoryStore();
    const kernel = store.add("application/vnd.ironcore.image.kernel", encoder.encode("kernel ".repeat(500)));
    const config = store.add("application/vnd.ironcore.image.config.v1+json", encoder.encode(JSON.stringify({ commandLine: "console=ttyS0" })));
    const manifest = store.add("application/vnd.oci.image.manifest.v1+json", encoder.encode(JSON.stringify({ schemaVersion: 2, config, layers: [kernel] })));
    manifestDigest = manifest.digest;
    await store.tag(manifest, "boot");
    await fetchBootImage(store, "boot", dir, { fileNames: { kernel: "bzImage" } });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("checks the files under the recorded names and the command line against the saved config", async () => {
    const saved = await readSavedFetch(dir);
    expect(saved.digest).toBe(manifestDigest);
    expect(savedFetchMatches(saved, manifestDigest as Digest)).toBe(true);
    expect(savedFetchMatches(saved, `sha256:${"0".repeat(64)}` as Digest)).toBe(false);
    const report = await verifySavedDirectory(saved);
    expect(report.items.map((item) => [item.name, item.state])).toEqual([["bzImage", "ok"], ["cmdline", "ok"]]);
    await writeFile(join(dir, "cmdline"), "console=tty0\n");
    const changed = await verifySavedDirectory(saved);
    expect(changed.items[1]).toMatchObject({ name: "cmdline", ok: false, state: "changed" });
  });

  it("refuses a record whose config is not the manifest's, or whose names leave the folder", async () => {
    const path = join(dir, "ociboot-fetch.json");
    const record = JSON.parse(await readFile(path, "utf8")) as { config: { data: string }; fileNames: Record<string, string> };
    await writeFile(path, JSON.stringify({ ...record, config: { data: Buffer.from('{"commandLine":"init=/bin/sh"}').toString("base64") } }));
    await expect(readSavedFetch(dir)).rejects.toMatchObject({ code: "INTEGRITY" });
    await writeFile(path, JSON.stringify({ ...record, fileNames: { kernel: "../../etc/passwd" } }));
    await expect(readSavedFetch(dir)).rejects.toMatchObject({ code: "UNSAFE_CONTENT" });
  });

  it("passes a folder whose image has a boot config without a command line: the config is saved all the same", async () => {
    const plain = await mkdtemp(join(tmpdir(), "ociboot-verify-saved-plain-"));
    try {
      const kernel = store.add("application/vnd.ironcore.image.kernel", encoder.encode("another kernel"));
      const config = store.add("application/vnd.ironcore.image.config.v1+json", encoder.encode("{}"));
      const manifest = store.add("application/vnd.oci.image.manifest.v1+json", encoder.encode(JSON.stringify({ schemaVersion: 2, config, layers: [kernel] })));
      await store.tag(manifest, "plain");
      await fetchBootImage(store, "plain", plain);
      const report = await verifySavedDirectory(await readSavedFetch(plain));
      expect(report.items.map((item) => [item.name, item.state])).toEqual([["vmlinuz", "ok"]]);
      expect(report.ok).toBe(true);
    } finally {
      await rm(plain, { recursive: true, force: true });
    }
  });

  it("without a record, checks the default names and reports the command line as not checkable offline", async () => {
    await rm(join(dir, "ociboot-fetch.json"));
    const report = await verifySavedDirectory(await readSavedFetch(dir), { fileNames: { kernel: "bzImage" } });
    expect(report.items[0]).toMatchObject({ name: "bzImage", ok: true });
    expect(report.items[1]).toMatchObject({ name: "cmdline", ok: false, problem: expect.stringContaining("config was not saved") });
  });
});
