import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { MemoryStore } from "../../src/content/memory.ts";
import type { FetchedContent, FetchOptions } from "../../src/content/store.ts";
import { exitCodeFor } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { Limits, MediaType } from "../../src/oci/mediatypes.ts";
import { copyGraph } from "../../src/ops/copy-graph.ts";
import { walkGraph } from "../../src/ops/graph-walk.ts";
import { reachableDigests } from "../../src/ops/prune.ts";
import { resolveManifest } from "../../src/ops/resolve.ts";
import { verifyImage } from "../../src/ops/verify.ts";

const encoder = new TextEncoder();

/** A memory store that counts fetches per digest. */
class CountingStore extends MemoryStore {
  readonly fetched = new Map<string, number>();
  override async fetch(descriptor: Descriptor, options?: FetchOptions): Promise<FetchedContent> {
    this.fetched.set(descriptor.digest, (this.fetched.get(descriptor.digest) ?? 0) + 1);
    return super.fetch(descriptor, options);
  }
}

function manifestIn(store: MemoryStore, layers: Descriptor[], extra: Record<string, unknown> = {}): Descriptor {
  const config = store.add(MediaType.ociEmpty, encoder.encode("{}"));
  return store.add(MediaType.ociManifest, encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers, ...extra })));
}

function indexIn(store: MemoryStore, manifests: Descriptor[]): Descriptor {
  return store.add(MediaType.ociIndex, encoder.encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests })));
}

/** An image under `levels` indexes: the manifest lies at depth `levels`. */
function nested(store: MemoryStore, levels: number): Descriptor {
  let node = manifestIn(store, [store.add("application/octet-stream", encoder.encode("layer"))]);
  for (let level = 0; level < levels; level++) node = indexIn(store, [{ ...node, platform: { os: "linux", architecture: "amd64" } }]);
  return node;
}

describe("walkGraph", () => {
  it("reads each shared manifest once and hands out each shared blob once", async () => {
    const store = new CountingStore();
    const shared = store.add("application/octet-stream", encoder.encode("shared layer"));
    const own = store.add("application/octet-stream", encoder.encode("own layer"));
    const common = manifestIn(store, [shared]);
    const index = indexIn(store, [common, manifestIn(store, [shared, own]), common]);
    const blobs: string[] = [];
    await walkGraph(store, index, { action: "test", enter: (node) => void blobs.push(...node.blobs.map((blob) => blob.digest)) });
    const config = store.add(MediaType.ociEmpty, encoder.encode("{}"));
    expect(blobs.sort()).toEqual([config.digest, shared.digest, own.digest].sort());
    expect(store.fetched.get(common.digest)).toBe(1);
    expect(store.fetched.get(shared.digest)).toBeUndefined();
  });

  it("enters a node before what it reaches and leaves it after: a copy pushes a manifest after its content", async () => {
    const store = new MemoryStore();
    const first = manifestIn(store, [store.add("application/octet-stream", encoder.encode("a"))]);
    const second = manifestIn(store, [store.add("application/octet-stream", encoder.encode("b"))]);
    const index = indexIn(store, [first, second]);
    const events: string[] = [];
    await walkGraph(store, index, {
      action: "test",
      enter: (node) => void events.push(`enter ${node.descriptor.digest}`),
      leave: (node) => void events.push(`leave ${node.descriptor.digest}`),
    });
    expect(events).toEqual([`enter ${index.digest}`, `enter ${first.digest}`, `leave ${first.digest}`, `enter ${second.digest}`, `leave ${second.digest}`, `leave ${index.digest}`]);
  });

  it(`follows ${Limits.graphDepth} nested levels and refuses one more with UNSAFE_CONTENT, exit 5`, async () => {
    const store = new MemoryStore();
    await walkGraph(store, nested(store, Limits.graphDepth), { action: "test" });
    const error = await walkGraph(store, nested(store, Limits.graphDepth + 1), { action: "walk it" }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "UNSAFE_CONTENT", message: `Cannot walk it: manifests nested deeper than ${Limits.graphDepth} levels` });
    expect(exitCodeFor(error)).toBe(5);
  });

  it("refuses a graph with more descriptors than the cap, before reading past it", async () => {
    const store = new CountingStore();
    const layers = Array.from({ length: 10 }, (_, position) => store.add("application/octet-stream", encoder.encode(`layer ${position}`)));
    const manifests = layers.map((layer) => manifestIn(store, [layer]));
    const index = indexIn(store, manifests);
    // index + 10 manifests + the shared config + 10 layers = 22 descriptors.
    await walkGraph(store, index, { action: "test", maxNodes: 22 });
    const fresh = new CountingStore();
    for (const descriptor of [index, ...manifests]) fresh.add(descriptor.mediaType, await bytesOf(store, descriptor));
    const error = await walkGraph(fresh, index, { action: "walk it", maxNodes: 19 }).catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: "UNSAFE_CONTENT", message: "Cannot walk it: the graph has more than 19 descriptors" });
    expect(exitCodeFor(error)).toBe(5);
    expect(fresh.fetched.get(manifests[9]?.digest ?? "")).toBeUndefined();
  });

  it("passes over a subject the store lacks, but not a missing manifest of an index", async () => {
    const store = new MemoryStore();
    const elsewhere = new MemoryStore();
    const subject = manifestIn(elsewhere, []);
    const referrer = manifestIn(store, [], { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } });
    const reached: string[] = [];
    await walkGraph(store, referrer, { action: "test", enter: (node) => void reached.push(node.descriptor.digest) });
    expect(reached).toEqual([referrer.digest]);
    const broken = indexIn(store, [manifestIn(elsewhere, [])]);
    await expect(walkGraph(store, broken, { action: "test" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    const skipped: string[] = [];
    await walkGraph(store, broken, { action: "test", unreadable: (descriptor) => skipped.push(descriptor.digest) > 0 });
    expect(skipped).toHaveLength(1);
  });

  it("follows a subject the store holds, before the referrer is left", async () => {
    const store = new MemoryStore();
    const subject = manifestIn(store, [store.add("application/octet-stream", encoder.encode("image layer"))]);
    const referrer = manifestIn(store, [], { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size } });
    const left: string[] = [];
    await walkGraph(store, referrer, { action: "test", leave: (node) => void left.push(node.descriptor.digest) });
    expect(left).toEqual([subject.digest, referrer.digest]);
  });
});

describe("every walker shares the walk's caps", () => {
  let work: string;
  beforeEach(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-walk-"));
  });
  afterEach(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("copy, verify, resolve and prune all refuse indexes nested too deep with the same code", async () => {
    const source = new MemoryStore();
    const root = nested(source, Limits.graphDepth + 1);
    const layout = new OciLayoutStore(join(work, "store"));
    // Fill a layout by hand (a copy into it would refuse the graph), then list the root.
    for (let node: Descriptor | undefined = root; node !== undefined; ) {
      const bytes = await bytesOf(source, node);
      await layout.push(node, new Blob([bytes]).stream());
      const document = JSON.parse(new TextDecoder().decode(bytes)) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
      for (const blob of [document.config, ...(document.layers ?? [])]) if (blob) await layout.push(blob, new Blob([await bytesOf(source, blob)]).stream());
      node = document.manifests?.[0];
    }
    await layout.addUntaggedEntry(root);
    await source.tag(root, "deep");
    const failures = await Promise.all([
      copyGraph(source, new MemoryStore(), root).catch((error: unknown) => error),
      verifyImage(source, "deep").catch((error: unknown) => error),
      resolveManifest(source, "deep", { platform: { os: "linux", architecture: "amd64" } }).catch((error: unknown) => error),
      reachableDigests(layout, [root]).catch((error: unknown) => error),
    ]);
    for (const failure of failures) {
      expect(failure).toMatchObject({ code: "UNSAFE_CONTENT", message: expect.stringMatching(`nested deeper than ${Limits.graphDepth} levels`) });
    }
  });

  it("prune recognises manifests by media type like the rest: a look-alike media type is a leaf", async () => {
    const store = new MemoryStore();
    const lookalike = store.add("application/vnd.example.manifest.v1+json", encoder.encode("not a manifest at all"));
    const root = manifestIn(store, [lookalike]);
    const layout = new OciLayoutStore(join(work, "store"));
    for (const descriptor of [lookalike, root]) await layout.push(descriptor, new Blob([await bytesOf(store, descriptor)]).stream());
    const config = JSON.parse(new TextDecoder().decode(await bytesOf(store, root))).config as Descriptor;
    await layout.push(config, new Blob([await bytesOf(store, config)]).stream());
    expect([...(await reachableDigests(layout, [root]))].sort()).toEqual([root.digest, config.digest, lookalike.digest].sort());
  });
});

async function bytesOf(store: MemoryStore, descriptor: Descriptor): Promise<Uint8Array> {
  const { stream } = await store.fetch(descriptor);
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
