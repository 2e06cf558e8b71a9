import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { startFaultServer, type FaultServer, type RecordedRequest } from "../harness/fault-server.ts";

// Large enough for the bulk GET (blobs from 16 MiB on); an odd size, so no block boundary lines up.
const BLOB = Buffer.alloc(17 * 1024 * 1024 + 4321);
for (let index = 0; index < BLOB.length; index += 4096) BLOB.writeUInt32LE((index * 2654435761) >>> 0, index);
const DIGEST = `sha256:${createHash("sha256").update(BLOB).digest("hex")}`;
const DESCRIPTOR: Descriptor = { mediaType: "application/vnd.ironcore.image.rootfs", digest: DIGEST as Descriptor["digest"], size: BLOB.length };

/** How the server answers the blob GET: each is a shape a registry or a proxy in front of it may produce. */
type Shape = "sized" | "range" | "chunked" | "redirect" | "cut" | "error-status";

/** What a client made of an answer: the bytes (by digest) from which offset, or the error code. */
type Outcome = { offset: number; digest: string; size: number } | { error: string };

describe("bulk GET and undici answer the same responses alike (OCIBOOT_BULK_GET=0 turns the bulk GET off)", () => {
  let work: string;
  let server: FaultServer;
  let shape: Shape = "sized";

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-bulk-differential-"));
    server = await startFaultServer((request: RecordedRequest, response: ServerResponse) => {
      if (request.url === "/v2/") return void response.writeHead(200, { "content-type": "application/json" }).end("{}");
      if (request.url.startsWith("/elsewhere/")) return void response.writeHead(200, { "content-length": String(BLOB.length) }).end(BLOB);
      if (!request.url.includes(`/blobs/${DIGEST}`)) return void response.writeHead(404).end();
      const range = /^bytes=(\d+)-$/.exec(String(request.headers.range ?? ""));
      switch (shape) {
        case "sized":
          return void response.writeHead(200, { "content-length": String(BLOB.length) }).end(BLOB);
        case "range": {
          const start = range ? Number(range[1]) : 0;
          return void response
            .writeHead(206, { "content-length": String(BLOB.length - start), "content-range": `bytes ${start}-${BLOB.length - 1}/${BLOB.length}` })
            .end(BLOB.subarray(start));
        }
        case "chunked":
          response.writeHead(200, { "transfer-encoding": "chunked" });
          response.write(BLOB.subarray(0, 1_000_000));
          return void response.end(BLOB.subarray(1_000_000));
        case "redirect":
          return void response.writeHead(307, { location: `/elsewhere/${DIGEST}` }).end();
        case "cut":
          response.writeHead(200, { "content-length": String(BLOB.length) });
          return void response.write(BLOB.subarray(0, 5_000_000), () => response.socket?.destroy());
        case "error-status":
          return void response.writeHead(403, { "content-type": "application/json" }).end('{"errors":[{"code":"DENIED","message":"no"}]}');
      }
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  async function fetchWith(env: Record<string, string>, offset?: number): Promise<{ outcome: Outcome; bulk: boolean }> {
    const lines: string[] = [];
    const options: RegistryOptions = { env, homeDir: work, retry: { attempts: 1 }, log: (line) => lines.push(line) };
    const since = server.requests.length;
    let outcome: Outcome;
    try {
      const repository = openRepository({ registry: server.host, repository: "os/blob" }, options);
      const opened = await repository.openBlob(DESCRIPTOR, offset === undefined ? {} : { offset });
      const hash = createHash("sha256");
      let size = 0;
      for await (const chunk of opened.body) {
        hash.update(chunk);
        size += chunk.byteLength;
        opened.release?.(chunk);
      }
      outcome = { offset: opened.offset, digest: `sha256:${hash.digest("hex")}`, size };
    } catch (error) {
      outcome = { error: (error as { code?: string }).code ?? String(error) };
    } finally {
      await closeRegistryConnections(options);
    }
    // The transport's debug log says which way each blob GET went.
    const bulk = lines.some((line) => /\/blobs\/.*(bulk|asking again through undici)/.test(line));
    expect(server.requests.length).toBeGreaterThan(since);
    return { outcome, bulk };
  }

  const cases: Array<{ shape: Shape; offset?: number; expected: Outcome }> = [
    { shape: "sized", expected: { offset: 0, digest: DIGEST, size: BLOB.length } },
    { shape: "range", offset: 3 * 1024 * 1024 + 7, expected: { offset: 3 * 1024 * 1024 + 7, digest: `sha256:${createHash("sha256").update(BLOB.subarray(3 * 1024 * 1024 + 7)).digest("hex")}`, size: BLOB.length - (3 * 1024 * 1024 + 7) } },
    { shape: "chunked", expected: { offset: 0, digest: DIGEST, size: BLOB.length } },
    { shape: "redirect", expected: { offset: 0, digest: DIGEST, size: BLOB.length } },
    { shape: "cut", expected: { error: "NETWORK" } },
    { shape: "error-status", expected: { error: "DENIED" } },
  ];
  for (const { shape: answer, offset, expected } of cases) {
    it(`${answer}${offset === undefined ? "" : ` from byte ${offset}`}`, async () => {
      shape = answer;
      const withBulk = await fetchWith({}, offset);
      const withUndici = await fetchWith({ OCIBOOT_BULK_GET: "0" }, offset);
      expect(withBulk.outcome).toEqual(expected);
      expect(withUndici.outcome).toEqual(withBulk.outcome);
      expect(withUndici.bulk).toBe(false);
      // The bulk GET is tried first on a plain direct connection; it hands framing it does not
      // take (chunked) back to undici, which then repeats the request.
      expect(withBulk.bulk).toBe(true);
    });
  }
});
