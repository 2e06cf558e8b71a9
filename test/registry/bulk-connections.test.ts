import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { fetchBootImage } from "../../src/ops/fetch.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { type FaultServer, type RecordedRequest, startFaultServer } from "../harness/fault-server.ts";
import { makeBootImage, publishWithSkopeo, randomBytesFile, writeOciLayout } from "../harness/images.ts";
import { type RecordingProxy, startRecordingProxy } from "../harness/recording-proxy.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";

const MiB = 1024 * 1024;

/**
 * The bulk GET (large blobs) keeps its connection for the next blob of the same origin when the
 * server allows it: a fetch of several large blobs costs fewer TCP connections than blobs.
 */
describe("bulk GETs share a connection against a real registry", () => {
  let work: string;
  let registry: RunningRegistry;
  let relay: RecordingProxy;
  let options: RegistryOptions;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-bulk-connections-"));
    registry = await startRegistry();
    // Three layers large enough for the bulk GET, each a different size.
    const [kernel, initrd, rootfs] = await Promise.all([
      randomBytesFile(join(work, "kernel"), 16 * MiB + 11),
      randomBytesFile(join(work, "initrd"), 16 * MiB + 22),
      randomBytesFile(join(work, "rootfs"), 17 * MiB + 33),
    ]);
    const layout = join(work, "layout");
    await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { file: kernel!.path }, initrd: { file: initrd!.path }, rootfs: { file: rootfs!.path } })],
    });
    await publishWithSkopeo(layout, "v1", registry, "os/large");
    relay = await startRecordingProxy({ url: registry.url });
    options = { env: {}, homeDir: work };
  }, 120_000);
  afterAll(async () => {
    await closeRegistryConnections(options);
    await relay?.stop();
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("one fetch of three large blobs, one after another: one connection for all of them", async () => {
    const repository = openRepository({ registry: relay.host, repository: "os/large" }, options);
    const out = join(work, "out");
    const report = await fetchBootImage(repository, "v1", out, { concurrency: 1 });
    const large = report.files.filter((file) => file.size >= 16 * MiB);
    expect(large).toHaveLength(3);
    for (const file of large) expect(`sha256:${createHash("sha256").update(await readFile(file.path)).digest("hex")}`).toBe(file.digest);

    const blobGets = relay.requests.filter((request) => request.method === "GET" && large.some((file) => request.path.endsWith(file.digest)));
    expect(blobGets).toHaveLength(3);
    expect(new Set(blobGets.map((request) => request.remotePort)).size).toBe(1);
    // Manifest, config and the three layers (four blobs in all) came over fewer connections than blobs:
    // undici's for the small requests and the bulk GET's one.
    expect(relay.connections).toBeLessThan(4);
  });
});

/** Blobs served from memory by a fault server: the same bytes under as many names as a test asks for. */
const BODY = Buffer.alloc(16 * MiB + 1000, 3);
const descriptorNumber = (number: number): Descriptor => ({
  mediaType: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
  digest: `sha256:${number.toString(16).padStart(64, "0")}` as Descriptor["digest"],
  size: BODY.length,
});

describe("bulk GET connections against servers that keep them, close them or break them", () => {
  let work: string;
  let server: FaultServer;
  let cdn: FaultServer | undefined;
  let options: RegistryOptions;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-bulk-keepalive-"));
    server = await startFaultServer((_request, response) => void response.writeHead(404).end());
  });
  afterEach(async () => {
    await closeRegistryConnections(options);
    await cdn?.stop();
    cdn = undefined;
    server.requests.length = 0;
  });
  afterAll(async () => {
    await server?.stop();
    await rm(work, { recursive: true, force: true });
  });

  function handleBlobs(blob: (request: RecordedRequest, response: ServerResponse, raw: IncomingMessage) => void, target: FaultServer = server): void {
    target.handle((request, response, raw) => {
      if (request.url === "/v2/") return void response.writeHead(200, { "content-type": "application/json", "content-length": "2" }).end("{}");
      if (request.url.includes("/blobs/")) return blob(request, response, raw);
      response.writeHead(404, { "content-length": "0" }).end();
    });
  }

  /** Reads blobs 1..count one after another; returns each one's outcome (its byte count, or its error code). */
  async function readBlobs(count: number): Promise<Array<number | string>> {
    options = { env: {}, homeDir: work, retry: { attempts: 1 } };
    const repository = openRepository({ registry: server.host, repository: "os/blob" }, options);
    const outcomes: Array<number | string> = [];
    for (let number = 1; number <= count; number++) {
      try {
        const opened = await repository.openBlob(descriptorNumber(number));
        let size = 0;
        for await (const chunk of opened.body) {
          size += chunk.byteLength;
          opened.release?.(chunk);
        }
        outcomes.push(size);
      } catch (error) {
        outcomes.push((error as { code?: string }).code ?? String(error));
      }
    }
    return outcomes;
  }

  const blobPorts = (target: FaultServer = server) => target.requests.filter((request) => request.url.includes("/blobs/")).map((request) => request.remotePort);

  it("keeps one connection for four blobs when the server allows it", async () => {
    handleBlobs((_request, response) => void response.writeHead(200, { "content-length": String(BODY.length) }).end(BODY));
    expect(await readBlobs(4)).toEqual([BODY.length, BODY.length, BODY.length, BODY.length]);
    expect(blobPorts()).toHaveLength(4);
    expect(new Set(blobPorts()).size).toBe(1);
  });

  it("works with a server that closes the connection after each response", async () => {
    handleBlobs((_request, response) => void response.writeHead(200, { "content-length": String(BODY.length), connection: "close" }).end(BODY));
    expect(await readBlobs(3)).toEqual([BODY.length, BODY.length, BODY.length]);
    expect(new Set(blobPorts()).size).toBe(3);
  });

  it("sends a GET again on a new connection when the server drops a kept one before answering", async () => {
    const answered = new Set<number>();
    handleBlobs((request, response, raw) => {
      // A kept connection the server gave up on just as the next request arrived.
      if (answered.has(request.remotePort)) return void raw.socket.destroy();
      answered.add(request.remotePort);
      response.writeHead(200, { "content-length": String(BODY.length) }).end(BODY);
    });
    // One attempt per request chain: only the bulk GET's own replacement of the dropped connection can save these.
    expect(await readBlobs(3)).toEqual([BODY.length, BODY.length, BODY.length]);
    const ports = blobPorts();
    expect(ports).toHaveLength(5);
    expect(new Set(ports).size).toBe(3);
  });

  it("never reuses a connection that broke mid-body", async () => {
    let served = 0;
    handleBlobs((_request, response) => {
      served++;
      response.writeHead(200, { "content-length": String(BODY.length) });
      if (served === 1) return void response.write(BODY.subarray(0, 2 * MiB), () => response.socket?.destroy());
      response.end(BODY);
    });
    expect(await readBlobs(3)).toEqual(["NETWORK", BODY.length, BODY.length]);
    const ports = blobPorts();
    expect(ports[1]).not.toBe(ports[0]);
    expect(ports[2]).toBe(ports[1]);
  });

  it("keeps a connection per origin when blobs are redirected to a CDN", async () => {
    cdn = await startFaultServer((_request, response) => void response.writeHead(200, { "content-length": String(BODY.length) }).end(BODY));
    const cdnUrl = cdn.url;
    handleBlobs((request, response) => void response.writeHead(307, { location: `${cdnUrl}/storage${request.url}`, "content-length": "0" }).end());
    expect(await readBlobs(3)).toEqual([BODY.length, BODY.length, BODY.length]);
    expect(blobPorts()).toHaveLength(3);
    expect(new Set(blobPorts()).size).toBe(1);
    expect(cdn.requests).toHaveLength(3);
    expect(new Set(cdn.requests.map((request) => request.remotePort)).size).toBe(1);
    // The registry's connection is not the CDN's.
    expect(cdn.requests[0]?.remotePort).not.toBe(blobPorts()[0]);
  });
});
