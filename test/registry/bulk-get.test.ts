import { createHash, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdtemp, open, readFile, rm } from "node:fs/promises";
import { createServer, type RequestListener, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { bulkGet, type BulkGetRequest } from "../../src/registry/bulk-get.ts";
import { Transport } from "../../src/registry/transport.ts";
import { createCertificateAuthority, issueServerCertificate } from "../harness/certificates.ts";

const BODY = randomBytes(5 * 1024 * 1024 + 12345);

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
});

async function serve(handler: RequestListener): Promise<URL> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`);
}

function request(url: URL, extra: Partial<BulkGetRequest> = {}): BulkGetRequest {
  return { url, headers: { "user-agent": "test" }, tls: { rejectUnauthorized: true }, headersTimeoutMs: 5_000, bodyTimeoutMs: 5_000, ...extra };
}

async function collect(body: AsyncIterable<Buffer>, release?: (chunk: Uint8Array) => void): Promise<{ bytes: Buffer; chunks: number }> {
  const hash = createHash("sha256");
  const parts: Buffer[] = [];
  let chunks = 0;
  for await (const chunk of body) {
    chunks++;
    hash.update(chunk);
    parts.push(Buffer.from(chunk));
    release?.(chunk);
  }
  return { bytes: Buffer.concat(parts), chunks };
}

describe("bulkGet", () => {
  it("reads a Content-Length body exactly, in large blocks that can be released and reused", async () => {
    let seen: Record<string, unknown> = {};
    const url = await serve((req, res) => {
      seen = req.headers;
      res.writeHead(200, { "content-length": BODY.length, "docker-content-digest": "sha256:x" });
      res.end(BODY);
    });
    const response = await bulkGet(request(url, { headers: { authorization: "Bearer t", range: "bytes=0-" } }));
    expect(response?.status).toBe(200);
    expect(response?.headers["docker-content-digest"]).toBe("sha256:x");
    const { bytes, chunks } = await collect(response!.body, (chunk) => response!.body.release(chunk));
    expect(Buffer.compare(bytes, BODY)).toBe(0);
    expect(chunks).toBeLessThan(BODY.length / (64 * 1024));
    expect(seen["authorization"]).toBe("Bearer t");
    expect(seen["range"]).toBe("bytes=0-");
  });

  it("hands on whole page-aligned blocks, which the kernel accepts for direct I/O as they are", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      // Small writes, so blocks fill from many socket reads.
      let offset = 0;
      const next = () => {
        while (offset < BODY.length) {
          const piece = BODY.subarray(offset, offset + 65_000);
          offset += piece.length;
          if (!res.write(piece)) return void res.once("drain", next);
        }
        res.end();
      };
      next();
    });
    const response = await bulkGet(request(url));
    expect(response?.body.alignment).toBe(4096);
    const dir = await mkdtemp(join(tmpdir(), "ociboot-bulk-"));
    const path = join(dir, "direct");
    let handle: FileHandle | undefined;
    try {
      handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_DIRECT).catch(() => undefined);
      const lengths: number[] = [];
      let position = 0;
      for await (const chunk of response!.body) {
        lengths.push(chunk.byteLength);
        const last = position + chunk.byteLength === BODY.length;
        // Misaligned memory, offset or length would fail here with EINVAL.
        if (handle && !last) await handle.write(chunk, 0, chunk.byteLength, position);
        position += chunk.byteLength;
        response!.body.release(chunk);
      }
      expect(lengths.slice(0, -1).every((length) => length === 1024 * 1024)).toBe(true);
      expect(lengths.reduce((sum, length) => sum + length, 0)).toBe(BODY.length);
    } finally {
      await handle?.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("gives error statuses with their small bodies", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(404, { "content-type": "application/json", "content-length": 22 });
      res.end('{"errors":[{"a":"b"}]}');
    });
    const response = await bulkGet(request(url));
    expect(response?.status).toBe(404);
    expect((await collect(response!.body)).bytes.toString()).toBe('{"errors":[{"a":"b"}]}');
  });

  it("declines a chunked body (the caller asks again another way)", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200);
      res.write(BODY.subarray(0, 1000));
      res.end(BODY.subarray(1000, 2000));
    });
    expect(await bulkGet(request(url))).toBeUndefined();
  });

  it("hands on what arrived, then fails, when the connection ends early", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      res.write(BODY.subarray(0, 3 * 1024 * 1024), () => setTimeout(() => res.socket?.destroy(), 50));
    });
    const response = await bulkGet(request(url));
    let received = 0;
    await expect(
      (async () => {
        for await (const chunk of response!.body) received += chunk.byteLength;
      })(),
    ).rejects.toMatchObject({ code: "ECONNRESET" });
    expect(received).toBe(3 * 1024 * 1024);
  });

  it("stops at once when aborted mid-body", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      res.write(BODY.subarray(0, 1024 * 1024));
    });
    const abort = new AbortController();
    const response = await bulkGet(request(url, { signal: abort.signal }));
    const iterator = response!.body[Symbol.asyncIterator]();
    abort.abort(new Error("stop"));
    await expect((async () => {
      for (;;) if ((await iterator.next()).done) return;
    })()).rejects.toThrow("stop");
  });

  it("speaks TLS, checking the certificate against the given CAs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "ociboot-bulk-tls-"));
    try {
      const authority = await createCertificateAuthority(join(dir, "ca"));
      const certificate = await issueServerCertificate(authority, join(dir, "server"));
      const [cert, key, ca] = await Promise.all([readFile(certificate.certificateFile, "utf8"), readFile(certificate.keyFile, "utf8"), readFile(authority.caFile, "utf8")]);
      server = createHttpsServer({ cert, key }, (_req, res) => {
        res.writeHead(200, { "content-length": BODY.length });
        res.end(BODY);
      }) as unknown as Server;
      await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
      const url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}/blob`);
      const response = await bulkGet(request(url, { tls: { ca: [ca], rejectUnauthorized: true } }));
      expect(Buffer.compare((await collect(response!.body)).bytes, BODY)).toBe(0);
      await expect(bulkGet(request(url))).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("Transport with bulk requests", () => {
  it("falls back to undici for a chunked body and gives the same bytes", async () => {
    let requests = 0;
    const url = await serve((_req, res) => {
      requests++;
      res.writeHead(200);
      res.end(BODY);
    });
    const transport = new Transport({});
    try {
      const response = await transport.request({ method: "GET", url, bulk: true });
      expect(response.body.release).toBeUndefined();
      expect(Buffer.compare((await collect(response.body)).bytes, BODY)).toBe(0);
      expect(requests).toBe(2);
    } finally {
      await transport.close();
    }
  });

  it("reads a Content-Length body in bulk, with release", async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { "content-length": BODY.length });
      res.end(BODY);
    });
    const transport = new Transport({});
    try {
      const response = await transport.request({ method: "GET", url, bulk: true });
      expect(response.body.release).toBeTypeOf("function");
      expect(Buffer.compare((await collect(response.body, (chunk) => response.body.release?.(chunk))).bytes, BODY)).toBe(0);
    } finally {
      await transport.close();
    }
  });
});
