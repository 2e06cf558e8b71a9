import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { copyImage } from "../../src/ops/copy-image.ts";
import { pullImage } from "../../src/ops/push-pull.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { type RandomFile } from "../harness/images.ts";
import { type RecordingProxy, type RelayedRequest } from "../harness/recording-proxy.ts";
import { type RelayedBootImage, startRelayedBootImage } from "../harness/relayed-boot-image.ts";

const MiB = 1024 * 1024;
const CUT_AT = 9 * MiB;

/**
 * A blob whose transfer the network cuts midway must continue from the byte reached, whatever the
 * destination: the relay in front of a real registry cuts the rootfs GET after 9 MiB, and the bytes
 * the client asks for in all (each GET's size minus its Range start) show whether it started over.
 */
describe("a cut blob resumes into every destination", () => {
  let work: string;
  let relay: RecordingProxy;
  let rootfs: RandomFile;
  let options: RegistryOptions;
  let rootfsPath: RegExp;

  let image: RelayedBootImage;

  beforeAll(async () => {
    image = await startRelayedBootImage("ingest-resume", "os/big", 24 * MiB);
    ({ work, relay, rootfs } = image);
    options = { env: {}, homeDir: work };
    rootfsPath = image.rootfsPath;
  }, 120_000);
  afterAll(async () => {
    await closeRegistryConnections(options);
    await image?.stop();
  });
  beforeEach(() => {
    relay.requests.length = 0;
    relay.inject({ method: "GET", path: rootfsPath, fault: { kind: "cut", afterBytes: CUT_AT } });
  });

  /** The rootfs GETs, and the bytes they asked for in all. */
  function rootfsRequests(): { gets: RelayedRequest[]; requestedBytes: number; rangeStarts: number[] } {
    const gets = relay.requests.filter((request) => request.method === "GET" && rootfsPath.test(request.path));
    const rangeStarts = gets.map((request) => Number(/^bytes=(\d+)-$/.exec(String(request.headers.range ?? "bytes=0-"))?.[1] ?? Number.NaN));
    return { gets, rangeStarts, requestedBytes: rangeStarts.reduce((sum, start) => sum + (rootfs.size - start), 0) };
  }

  async function expectStoredRootfs(store: OciLayoutStore): Promise<void> {
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(store.blobPath(rootfs.digest))) hash.update(chunk as Buffer);
    expect(`sha256:${hash.digest("hex")}`).toBe(rootfs.digest);
    // Nothing half-written is left among the store's temporary files.
    expect(await readdir(join(store.root, ".ociboot", "tmp"))).toEqual([]);
  }

  function expectResumed(): void {
    const { gets, rangeStarts, requestedBytes } = rootfsRequests();
    expect(gets.map((request) => request.fault)).toEqual(["cut", undefined]);
    expect(rangeStarts[0]).toBe(0);
    // The second GET starts where the first one's bytes ended, not at 0 …
    expect(rangeStarts[1]).toBeGreaterThan(CUT_AT - 2 * MiB);
    expect(rangeStarts[1]).toBeLessThanOrEqual(CUT_AT);
    expect(gets[1]?.status).toBe(206);
    // … so after the cut only the rest was asked for: the two GETs asked for the blob and its
    // remainder (24 + 15 MiB here), where starting over would have asked for it twice (48 MiB).
    expect(requestedBytes).toBeLessThanOrEqual(2 * rootfs.size - CUT_AT + 2 * MiB);
    expect(requestedBytes).toBeLessThan(2 * rootfs.size - 6 * MiB);
  }

  it("pull into the local store", async () => {
    const store = new OciLayoutStore(join(work, "pulled"));
    const repository = openRepository({ registry: relay.host, repository: "os/big" }, options);
    const { reference } = await pullImage(repository, store, `${relay.host}/os/big:v1`, { retryDelayMs: 1 });
    expect(reference).toBe(`${relay.host}/os/big:v1`);
    expectResumed();
    await expectStoredRootfs(store);
  });

  it("copy into an OCI layout destination", async () => {
    const store = new OciLayoutStore(join(work, "copied"));
    const repository = openRepository({ registry: relay.host, repository: "os/big" }, options);
    const result = await copyImage(repository, "v1", store, { targetReference: "os/big:v1", retryDelayMs: 1 });
    expect(result.copied.count).toBe(5);
    expectResumed();
    await expectStoredRootfs(store);
  });
});
