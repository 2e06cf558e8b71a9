import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import type { DirectRequest } from "../../src/content/store.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { directRequestFor } from "../../src/ops/direct-request.ts";

const encoder = new TextEncoder();

/** A store that serves by URL, as a registry does: the URL names what was asked for. */
class ServingStore extends MemoryStore {
  async directRequest(target: string | Descriptor): Promise<DirectRequest> {
    return { url: `http://store/${typeof target === "string" ? `manifests/${target}` : `blobs/${target.digest}`}`, headers: {} };
  }
}

function bootImageIn(store: MemoryStore): { manifest: Descriptor; kernel: Descriptor } {
  const kernel = store.add("application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz", encoder.encode("kernel"));
  const config = store.add("application/vnd.onmetal.image.config.v1alpha1+json", encoder.encode("{}"));
  const manifest = store.add(
    "application/vnd.oci.image.manifest.v1+json",
    encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [kernel] })),
  );
  return { manifest, kernel };
}

describe("directRequestFor", () => {
  it("asks the store for the manifest itself, or for the layer that plays a role", async () => {
    const store = new ServingStore();
    const { manifest, kernel } = bootImageIn(store);
    expect((await directRequestFor(store, manifest.digest)).url).toBe(`http://store/manifests/${manifest.digest}`);
    expect((await directRequestFor(store, manifest.digest, { role: "kernel" })).url).toBe(`http://store/blobs/${kernel.digest}`);
    await expect(directRequestFor(store, manifest.digest, { role: "initrd" })).rejects.toMatchObject({ code: "NOT_FOUND" });
  });

  it("refuses a store that cannot serve by URL", async () => {
    const store = new MemoryStore();
    const { manifest } = bootImageIn(store);
    await expect(directRequestFor(store, manifest.digest)).rejects.toMatchObject({ code: "USAGE" });
  });
});
