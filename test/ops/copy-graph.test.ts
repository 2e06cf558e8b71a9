import { describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/content/memory.ts";
import { OcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { copyGraph } from "../../src/ops/copy-graph.ts";
import { DEFAULT_RETRY_POLICY } from "../../src/retry.ts";

const encoder = new TextEncoder();

/** A target whose first pushes of a blob break off like a dropped connection. */
class FlakyTarget extends MemoryStore {
  failuresLeft: number;
  readonly failureCode: "NETWORK" | "INTEGRITY";
  constructor(failures: number, failureCode: "NETWORK" | "INTEGRITY" = "NETWORK") {
    super();
    this.failuresLeft = failures;
    this.failureCode = failureCode;
  }
  override async push(descriptor: Descriptor, content: ReadableStream<Uint8Array>): Promise<void> {
    if (descriptor.mediaType === "application/octet-stream" && this.failuresLeft > 0) {
      this.failuresLeft--;
      await content.cancel();
      throw new OcibootError(this.failureCode, "Cannot upload: connection reset");
    }
    return super.push(descriptor, content);
  }
}

function imageIn(store: MemoryStore): { manifest: Descriptor; layer: Descriptor } {
  const layer = store.add("application/octet-stream", encoder.encode("layer bytes"));
  const config = store.add("application/vnd.oci.empty.v1+json", encoder.encode("{}"));
  const manifest = store.add(
    "application/vnd.oci.image.manifest.v1+json",
    encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json", config, layers: [layer] })),
  );
  return { manifest, layer };
}

describe("copyGraph", () => {
  it("starts a broken blob upload over, reading the source again", async () => {
    const source = new MemoryStore();
    const { manifest, layer } = imageIn(source);
    const target = new FlakyTarget(2);
    await copyGraph(source, target, manifest, { retryDelayMs: 1 });
    expect(target.failuresLeft).toBe(0);
    expect(await target.exists(layer)).toBe(true);
    expect(await target.exists(manifest)).toBe(true);
  });

  it("gives up after a bounded number of attempts and pushes no manifest", async () => {
    const source = new MemoryStore();
    const { manifest } = imageIn(source);
    const target = new FlakyTarget(10);
    await expect(copyGraph(source, target, manifest, { retryDelayMs: 1 })).rejects.toMatchObject({ code: "NETWORK" });
    expect(target.failuresLeft).toBe(10 - DEFAULT_RETRY_POLICY.attempts);
    expect(await target.exists(manifest)).toBe(false);
  });

  it("does not retry an integrity failure", async () => {
    const source = new MemoryStore();
    const { manifest } = imageIn(source);
    const target = new FlakyTarget(5, "INTEGRITY");
    await expect(copyGraph(source, target, manifest, { retryDelayMs: 1 })).rejects.toMatchObject({ code: "INTEGRITY" });
    expect(target.failuresLeft).toBe(4);
  });

  it("tries a blob only once when told to (a target that cannot take it again)", async () => {
    const source = new MemoryStore();
    const { manifest } = imageIn(source);
    const target = new FlakyTarget(5);
    await expect(copyGraph(source, target, manifest, { retryDelayMs: 1, restartBlobs: false })).rejects.toMatchObject({ code: "NETWORK" });
    expect(target.failuresLeft).toBe(4);
  });
});
