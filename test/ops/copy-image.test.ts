import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { MemoryStore } from "../../src/content/memory.ts";
import { copyImage } from "../../src/ops/copy-image.ts";
import { makeBootImage, REF_NAME_ANNOTATION, writeOciLayout } from "../harness/images.ts";

let sandbox: string;
beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "ociboot-copy-image-"));
});
afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

async function sourceLayout() {
  const layout = await writeOciLayout(join(sandbox, "source"), {
    manifests: [{ ...makeBootImage({ kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, dialect: "onmetal" }), tag: "latest" }],
  });
  const manifest = layout.manifests[0];
  if (manifest === undefined) throw new Error("no manifest written");
  return { store: new OciLayoutStore(layout.directory), manifest };
}

describe("copyImage", () => {
  it("lists the copy untagged in a layout when the destination names no REF, once however often it runs", async () => {
    const { store, manifest } = await sourceLayout();
    const target = new OciLayoutStore(join(sandbox, "target"));
    const first = await copyImage(store, "latest", target);
    expect(first.copied.count).toBe(5);
    const again = await copyImage(store, "latest", target);
    expect(again.copied).toEqual({ count: 0, bytes: 0 });
    expect(await target.entries()).toEqual([manifest.descriptor]);
  });

  it("names the copy with the destination REF, replacing what the name meant before", async () => {
    const { store, manifest } = await sourceLayout();
    const target = new OciLayoutStore(join(sandbox, "target"));
    await copyImage(store, "latest", target, { targetReference: "ghcr.io/me/os:1.0" });
    expect(await target.entries()).toEqual([{ ...manifest.descriptor, annotations: { [REF_NAME_ANNOTATION]: "ghcr.io/me/os:1.0" } }]);
  });

  it("refuses a destination digest the source does not have, before copying anything", async () => {
    const { store, manifest } = await sourceLayout();
    const target = new MemoryStore();
    const other = `sha256:${"0".repeat(64)}`;
    await expect(copyImage(store, "latest", target, { targetDigest: other })).rejects.toMatchObject({ code: "USAGE", message: /the source is sha256:/ });
    expect(await target.exists(manifest.config)).toBe(false);
  });
});
