import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe as group, expect, it } from "vitest";
import { verifyContent } from "../../src/content/verify.ts";
import { isOcibootError, OcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { createCertificateAuthority, issueServerCertificate } from "../harness/certificates.ts";
import { run } from "../harness/commands.ts";
import { type FaultServer, sendRegistryError, startFaultServer } from "../harness/fault-server.ts";
import { describe, readAll } from "./helpers.ts";

const BLOB = randomBytes(256 * 1024);
const BLOB_DESCRIPTOR: Descriptor = describe("application/octet-stream", BLOB);
const MANIFEST = Buffer.from(
  JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: describe(MediaType.ociEmpty, Buffer.from("{}")), layers: [BLOB_DESCRIPTOR] }),
);
const MANIFEST_DIGEST = describe(MediaType.ociManifest, MANIFEST).digest;
const USER = "fault-user";
const PASSWORD = "fault-password-s3cret";
const BASIC = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;

let work: string;
const servers: FaultServer[] = [];

/** An IPv4 address of this machine that is not loopback, where there is one: proxies apply to it. */
const OUTWARD_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal)?.address;

async function server(...args: Parameters<typeof startFaultServer>): Promise<FaultServer> {
  const started = await startFaultServer(...args);
  servers.push(started);
  return started;
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-faults-"));
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((started) => started.stop()));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** Options with recorded, instant sleeps and a collected debug log. */
function testOptions(extra: Partial<RegistryOptions> = {}): { options: RegistryOptions; sleeps: number[]; log: string[] } {
  const sleeps: number[] = [];
  const log: string[] = [];
  const options: RegistryOptions = {
    env: {},
    homeDir: work,
    retry: { attempts: 4, baseDelayMs: 10, maxDelayMs: 100 },
    sleep: async (milliseconds) => {
      sleeps.push(milliseconds);
    },
    log: (line) => log.push(line),
    ...extra,
  };
  return { options, sleeps, log };
}

function isPing(url: string): boolean {
  return url === "/v2/";
}

function sendManifest(response: import("node:http").ServerResponse, body: Buffer = MANIFEST, headers: Record<string, string> = {}): void {
  response.writeHead(200, { "content-type": MediaType.ociManifest, "content-length": String(body.length), ...headers });
  response.end(body);
}

group("redirects", () => {
  it("follows a blob redirect to another host without the Authorization header and with secrets kept out of logs", async () => {
    const storage = await server((request, response) => {
      response.writeHead(200, { "content-length": String(BLOB.length) });
      response.end(BLOB);
    });
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (request.headers.authorization !== BASIC) {
        return sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="fault"' });
      }
      response.writeHead(307, { location: `http://localhost:${storage.port}/data/blob?X-Amz-Signature=topsecret&X-Amz-Credential=key` });
      response.end();
    });
    const { options, log } = testOptions({ username: USER, password: PASSWORD });
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);

    const fetched = await repository.fetch(BLOB_DESCRIPTOR);
    expect(await readAll(fetched.stream.pipeThrough(verifyContent(BLOB_DESCRIPTOR)))).toEqual(BLOB);

    const authorised = registry.requests.filter((request) => request.headers.authorization === BASIC);
    expect(authorised.length).toBeGreaterThan(0);
    expect(storage.requests).toHaveLength(1);
    expect(storage.requests[0]?.headers.authorization).toBeUndefined();
    expect(storage.requests[0]?.host).toBe(`localhost:${storage.port}`);
    const text = log.join("\n");
    expect(text).toContain("credentials dropped");
    expect(text).not.toContain("topsecret");
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(BASIC.slice(6));
  });

  it("keeps Authorization on a redirect within the same origin", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (request.headers.authorization !== BASIC) {
        return sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="fault"' });
      }
      if (request.url.startsWith("/v2/")) return void response.writeHead(302, { location: "/storage/blob" }).end();
      response.writeHead(200, { "content-length": String(BLOB.length) });
      response.end(BLOB);
    });
    const { options } = testOptions({ username: USER, password: PASSWORD });
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    expect(await readAll((await repository.fetch(BLOB_DESCRIPTOR)).stream)).toEqual(BLOB);
    expect(registry.requests.find((request) => request.url === "/storage/blob")?.headers.authorization).toBe(BASIC);
  });

  it("refuses a redirect from HTTPS to plain HTTP", async () => {
    const authority = await createCertificateAuthority(join(work, "ca-downgrade"));
    const certificate = await issueServerCertificate(authority, join(work, "server-downgrade"));
    const plain = await server((request, response) => void response.writeHead(200).end(BLOB));
    const registry = await server(
      (request, response) => {
        if (isPing(request.url)) return void response.writeHead(200).end("{}");
        response.writeHead(307, { location: `http://127.0.0.1:${plain.port}/blob` }).end();
      },
      { tls: certificate },
    );
    const { options } = testOptions({ caFile: authority.caFile });
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.fetch(BLOB_DESCRIPTOR).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "TLS")).toBe(true);
    expect((error as Error).message).toMatch(/refusing to leave HTTPS for plain HTTP/);
    expect(plain.requests).toHaveLength(0);
  });

  it("stops after 10 redirects", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response.writeHead(302, { location: `${request.url.split("?")[0]}?hop=${registry.requests.length}` }).end();
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.fetch(BLOB_DESCRIPTOR).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "REGISTRY")).toBe(true);
    expect((error as Error).message).toMatch(/more than 10 redirects/);
    // The probe, the first request and ten followed hops.
    expect(registry.requests.length).toBe(12);
  });
});

group("retries", () => {
  it("retries 503 and then succeeds", async () => {
    let failures = 2;
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (failures-- > 0) return sendRegistryError(response, 503, "UNAVAILABLE", "try later");
      sendManifest(response);
    });
    const { options, sleeps } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const descriptor = await repository.resolve("1.0");
    expect(descriptor.digest).toBe(MANIFEST_DIGEST);
    expect(sleeps).toHaveLength(2);
    // Exponential backoff with jitter: within [ceiling/2, ceiling].
    expect(sleeps[0]).toBeGreaterThanOrEqual(5);
    expect(sleeps[0]).toBeLessThanOrEqual(10);
    expect(sleeps[1]).toBeGreaterThanOrEqual(10);
    expect(sleeps[1]).toBeLessThanOrEqual(20);
  });

  it("gives up after the bounded number of attempts with the registry's error", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendRegistryError(response, 503, "UNAVAILABLE", "down for maintenance");
    });
    const { options, sleeps } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.resolve("1.0").catch((caught: unknown) => caught);
    expect(isOcibootError(error, "REGISTRY")).toBe(true);
    expect((error as Error).message).toBe(
      `Cannot fetch manifest ${registry.host}/boot/kernel:1.0: registry answered 503 UNAVAILABLE: down for maintenance`,
    );
    expect(sleeps).toHaveLength(3);
    expect(registry.requests.filter((request) => request.url.includes("/manifests/"))).toHaveLength(4);
  });

  it("waits as long as a 429's Retry-After says (seconds, HTTP date), capped", async () => {
    const answers = [
      { "retry-after": "7" },
      { "retry-after": new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString() },
      { "retry-after": "86400" },
    ];
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      const headers = answers.shift();
      if (headers) return sendRegistryError(response, 429, "TOOMANYREQUESTS", "slow down", headers);
      sendManifest(response);
    });
    const { options, sleeps } = testOptions({ now: () => Date.UTC(2030, 0, 1, 0, 0, 0), retry: { attempts: 4, maxRetryAfterMs: 60_000 } });
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    await repository.resolve("1.0");
    expect(sleeps).toEqual([7_000, 30_000, 60_000]);
  });

  it("really waits for Retry-After with the default clock", async () => {
    let limited = true;
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (limited) {
        limited = false;
        return sendRegistryError(response, 429, "TOOMANYREQUESTS", "slow down", { "retry-after": "1" });
      }
      sendManifest(response);
    });
    const options: RegistryOptions = { env: {}, homeDir: work };
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const started = Date.now();
    await repository.resolve("1.0");
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it("surfaces RATE_LIMITED when 429 persists", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendRegistryError(response, 429, "TOOMANYREQUESTS", "You have reached your pull rate limit", { "retry-after": "1" });
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.resolve("1.0").catch((caught: unknown) => caught);
    expect(isOcibootError(error, "RATE_LIMITED")).toBe(true);
    expect((error as Error).message).toMatch(/429 TOOMANYREQUESTS: You have reached your pull rate limit/);
  });

  it("stops waiting for a retry at once when aborted", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendRegistryError(response, 503, "UNAVAILABLE", "later", { "retry-after": "30" });
    });
    const options: RegistryOptions = { env: {}, homeDir: work };
    const abort = new AbortController();
    const reason = new OcibootError("INTERRUPTED", "Interrupted");
    setTimeout(() => abort.abort(reason), 100);
    const started = Date.now();
    const error = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options)
      .resolve("1.0", { signal: abort.signal })
      .catch((caught: unknown) => caught);
    expect(error).toBe(reason);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("retries a dropped connection", async () => {
    let drops = 1;
    const registry = await server((request, response, raw) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (drops-- > 0) return void raw.socket.destroy();
      sendManifest(response);
    });
    const { options, sleeps } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    expect((await repository.resolve("1.0")).digest).toBe(MANIFEST_DIGEST);
    expect(sleeps).toHaveLength(1);
  });
});

group("bodies", () => {
  it("fails a blob body cut short (Content-Length known) as NETWORK, never as success", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response.writeHead(200, { "content-length": String(BLOB.length) });
      response.write(BLOB.subarray(0, 100_000), () => response.socket?.destroy());
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const fetched = await repository.fetch(BLOB_DESCRIPTOR);
    const error = await readAll(fetched.stream.pipeThrough(verifyContent(BLOB_DESCRIPTOR))).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "NETWORK")).toBe(true);
  });

  it("fails a close-delimited body that ends early as INTEGRITY", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      // HTTP/1.0 style: no length, the end of the connection ends the body.
      response.writeHead(200, { connection: "close" });
      response.end(BLOB.subarray(0, 1000));
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const fetched = await repository.fetch(BLOB_DESCRIPTOR);
    const error = await readAll(fetched.stream.pipeThrough(verifyContent(BLOB_DESCRIPTOR))).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
  });

  it("refuses a blob whose Content-Length disagrees with the descriptor before reading it", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response.writeHead(200, { "content-length": String(BLOB.length + 1) });
      response.end(Buffer.concat([BLOB, Buffer.from("x")]));
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.fetch(BLOB_DESCRIPTOR).catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
  });

  it("cuts a huge error body at 64 KiB and still names the status", async () => {
    let written = 0;
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response.writeHead(403, { "content-type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, "A");
      const pump = () => {
        while (written < 64 * 1024 * 1024) {
          written += chunk.length;
          if (!response.write(chunk)) return void response.once("drain", pump);
        }
        response.end();
      };
      response.on("error", () => undefined);
      response.write('{"errors":[{"code":"DENIED","message":"');
      pump();
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    const error = await repository.resolve("1.0").catch((caught: unknown) => caught);
    expect(isOcibootError(error, "DENIED")).toBe(true);
    expect((error as Error).message).toMatch(/^Cannot fetch manifest .*: registry answered 403 .*cut at 65536 bytes/);
    expect((error as Error).message.length).toBeLessThan(600);
    // We hung up long before the 64 MiB were sent.
    expect(written).toBeLessThan(32 * 1024 * 1024);
  });

  it("shows a registry's JSON error code and message", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendRegistryError(response, 403, "DENIED", "requested access to the resource is denied");
    });
    const { options } = testOptions();
    const error = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options)
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect((error as Error).message).toBe(
      `Cannot fetch manifest ${registry.host}/boot/kernel:1.0: registry answered 403 DENIED: requested access to the resource is denied`,
    );
  });
});

group("manifests", () => {
  it("refuses a manifest whose Docker-Content-Digest disagrees with its bytes", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendManifest(response, MANIFEST, { "docker-content-digest": `sha256:${"0".repeat(64)}` });
    });
    const { options } = testOptions();
    const error = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options)
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
  });

  it("refuses content that does not hash to the requested digest", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendManifest(response);
    });
    const { options } = testOptions();
    const other = `sha256:${createHash("sha256").update("other").digest("hex")}`;
    const error = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options)
      .resolve(other)
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "INTEGRITY")).toBe(true);
  });

  it("refuses Docker schema 1 with UNSUPPORTED", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      const body = Buffer.from(JSON.stringify({ schemaVersion: 1, name: "x", tag: "1", fsLayers: [] }));
      response.writeHead(200, { "content-type": MediaType.dockerSchema1Signed, "content-length": String(body.length) });
      response.end(body);
    });
    const { options } = testOptions();
    const error = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options)
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "UNSUPPORTED")).toBe(true);
    expect((error as Error).message).toMatch(/schema 1/);
    const accept = registry.requests.find((request) => request.url.includes("/manifests/"))?.headers.accept ?? "";
    expect(accept).toContain(MediaType.ociManifest);
    expect(accept).toContain(MediaType.ociIndex);
    expect(accept).toContain(MediaType.dockerManifest);
    expect(accept).not.toContain("v1+prettyjws");
  });
});

group("ranges", () => {
  it("restarts from 0 when a 206 carries an inexact Content-Range", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (request.headers.range !== undefined) {
        // Off by one: starts a byte early.
        const body = BLOB.subarray(999);
        response.writeHead(206, { "content-range": `bytes 999-${BLOB.length - 1}/${BLOB.length}`, "content-length": String(body.length) });
        return void response.end(body);
      }
      response.writeHead(200, { "content-length": String(BLOB.length) });
      response.end(BLOB);
    });
    const { options } = testOptions();
    const fetched = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options).fetch(BLOB_DESCRIPTOR, { offset: 1000 });
    expect(fetched.offset).toBe(0);
    expect(await readAll(fetched.stream)).toEqual(BLOB);
  });

  it("takes offset 0 when the registry ignores Range and sends 200", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response.writeHead(200, { "content-length": String(BLOB.length) });
      response.end(BLOB);
    });
    const { options } = testOptions();
    const fetched = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options).fetch(BLOB_DESCRIPTOR, { offset: 1000 });
    expect(fetched.offset).toBe(0);
    expect(registry.requests.at(-1)?.headers.range).toBe("bytes=1000-");
    expect(await readAll(fetched.stream)).toEqual(BLOB);
  });
});

group("tag listing", () => {
  it("follows Link pagination on the same origin", async () => {
    const pages: Record<string, { tags: string[]; next?: string }> = {
      "/v2/boot/kernel/tags/list": { tags: ["a", "b"], next: "/v2/boot/kernel/tags/list?last=b&n=2" },
      "/v2/boot/kernel/tags/list?last=b&n=2": { tags: ["c", "d"], next: "/v2/boot/kernel/tags/list?last=d&n=2" },
      "/v2/boot/kernel/tags/list?last=d&n=2": { tags: ["e"] },
    };
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      const page = pages[request.url];
      if (page === undefined) return sendRegistryError(response, 404, "NAME_UNKNOWN", "no such page");
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (page.next) headers["link"] = `<${page.next}>; rel="next"`;
      response.writeHead(200, headers).end(JSON.stringify({ name: "boot/kernel", tags: page.tags }));
    });
    const { options } = testOptions();
    const tags: string[] = [];
    for await (const tag of openRepository({ registry: registry.host, repository: "boot/kernel" }, options).tags()) tags.push(tag);
    expect(tags).toEqual(["a", "b", "c", "d", "e"]);
  });

  it("refuses a next page on another origin", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      response
        .writeHead(200, { "content-type": "application/json", link: '<http://evil.example:5000/v2/boot/kernel/tags/list?last=a>; rel="next"' })
        .end(JSON.stringify({ tags: ["a"] }));
    });
    const { options } = testOptions();
    const tags: string[] = [];
    const error = await (async () => {
      for await (const tag of openRepository({ registry: registry.host, repository: "boot/kernel" }, options).tags()) tags.push(tag);
    })().catch((caught: unknown) => caught);
    expect(tags).toEqual(["a"]);
    expect(isOcibootError(error, "REGISTRY")).toBe(true);
    expect((error as Error).message).toMatch(/another origin/);
  });
});

group("connections", () => {
  it("reuses keep-alive connections for consecutive requests", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendManifest(response);
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    for (let index = 0; index < 5; index++) await repository.resolve(`v${index}`);
    // Six requests; undici may open a second socket while the first is being released.
    expect(registry.requests).toHaveLength(6);
    expect(new Set(registry.requests.map((request) => request.remotePort)).size).toBeLessThanOrEqual(2);
  });

  it("bounds concurrent connections per host", async () => {
    let open = 0;
    let most = 0;
    const registry = await server(async (request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      open++;
      most = Math.max(most, open);
      await new Promise((resolve) => setTimeout(resolve, 20));
      open--;
      response.writeHead(200, { "content-length": String(BLOB.length) }).end(BLOB);
    });
    const { options } = testOptions({ connectionsPerHost: 2 });
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    await Promise.all(
      Array.from({ length: 12 }, async () => {
        const fetched = await repository.fetch(BLOB_DESCRIPTOR);
        return readAll(fetched.stream);
      }),
    );
    expect(most).toBe(2);
    expect(new Set(registry.requests.map((request) => request.remotePort)).size).toBeLessThanOrEqual(3);
  });

  it("hands out a blob URL with the Authorization that fetches it", async () => {
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (request.headers.authorization !== BASIC) {
        return sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="fault"' });
      }
      response.writeHead(200, { "content-length": String(BLOB.length) }).end(request.method === "HEAD" ? undefined : BLOB);
    });
    const { options } = testOptions({ username: USER, password: PASSWORD });
    const located = await openRepository({ registry: registry.host, repository: "boot/kernel" }, options).directRequest(BLOB_DESCRIPTOR);
    expect(located).toEqual({ url: `http://${registry.host}/v2/boot/kernel/blobs/${BLOB_DESCRIPTOR.digest}`, headers: { Authorization: [BASIC] } });
  });
});

group("referrers API", () => {
  it("uses the API where the registry has it, across Link pages, filtering by artifact type", async () => {
    const subject = describe(MediaType.ociManifest, MANIFEST);
    const referrer = (artifactType: string, seed: string): Descriptor => ({ ...describe(MediaType.ociManifest, Buffer.from(seed)), artifactType });
    const pages: Record<string, { manifests: Descriptor[]; next?: string }> = {
      [`/v2/boot/kernel/referrers/${subject.digest}`]: { manifests: [referrer("build/log", "a")], next: `/v2/boot/kernel/referrers/${subject.digest}?page=2` },
      [`/v2/boot/kernel/referrers/${subject.digest}?page=2`]: { manifests: [referrer("build/os-release", "b")] },
    };
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      const path = request.url.replace(/[?&]artifactType=[^&]*/, "").replace(/^([^?]*)&/, "$1?");
      const page = pages[path];
      if (page === undefined) return sendRegistryError(response, 404, "NOT_FOUND", request.url);
      const headers: Record<string, string> = { "content-type": MediaType.ociIndex };
      if (page.next) headers["link"] = `<${page.next}>; rel="next"`;
      response.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: page.manifests }));
    });
    const { options } = testOptions();
    const repository = openRepository({ registry: registry.host, repository: "boot/kernel" }, options);
    expect((await repository.referrers(subject)).map((descriptor) => descriptor.artifactType)).toEqual(["build/log", "build/os-release"]);
    // This registry ignores the filter: we apply it ourselves.
    expect((await repository.referrers(subject, "build/os-release")).map((descriptor) => descriptor.artifactType)).toEqual(["build/os-release"]);
    expect(registry.requests.some((request) => request.url.includes("artifactType=build%2Fos-release"))).toBe(true);
    // No fallback tag was asked for.
    expect(registry.requests.some((request) => request.url.includes("/manifests/sha256-"))).toBe(false);
  });
});

group("credentials stay with their registry", () => {
  it("never uses credentials for registry.example.com on registry.example.com.evil.net", async () => {
    const dockerConfig = join(work, "docker-evil");
    await writeDockerConfigFile(dockerConfig, { auths: { "registry.example.com": { auth: Buffer.from(`${USER}:${PASSWORD}`).toString("base64") } } });
    // Both names are reached through the fault server acting as HTTP proxy (no DNS needed).
    const proxy = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      if (request.headers.authorization === undefined) {
        return sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": 'Basic realm="fault"' });
      }
      sendManifest(response);
    });
    const { options } = testOptions({ env: { DOCKER_CONFIG: dockerConfig, HTTP_PROXY: proxy.url }, plainHttp: true });

    const evil = openRepository({ registry: "registry.example.com.evil.net", repository: "boot/kernel" }, options);
    const error = await evil.resolve("1.0").catch((caught: unknown) => caught);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    const evilRequests = proxy.requests.filter((request) => request.host === "registry.example.com.evil.net");
    expect(evilRequests.length).toBeGreaterThan(0);
    expect(evilRequests.every((request) => request.headers.authorization === undefined)).toBe(true);

    // The real one gets them: the proxy path itself works.
    const real = openRepository({ registry: "registry.example.com", repository: "boot/kernel" }, options);
    expect((await real.resolve("1.0")).digest).toBe(MANIFEST_DIGEST);
    const realRequests = proxy.requests.filter((request) => request.host === "registry.example.com");
    expect(realRequests.some((request) => request.headers.authorization === BASIC)).toBe(true);
    expect(proxy.tunnels.length + proxy.requests.filter((request) => !request.tunnelled).length).toBeGreaterThan(0);
  });
});

group("proxies", () => {
  it("reaches an HTTPS registry through HTTPS_PROXY with a CONNECT tunnel", async () => {
    const authority = await createCertificateAuthority(join(work, "ca-proxy"));
    const directory = join(work, "proxied-host");
    const { mkdir } = await import("node:fs/promises");
    await mkdir(directory, { recursive: true });
    const keyFile = join(directory, "key.pem");
    const requestFile = join(directory, "request.csr");
    const certificateFile = join(directory, "cert.pem");
    const extensions = join(directory, "ext.cnf");
    await writeFile(extensions, "subjectAltName=DNS:registry.example.com\n");
    await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", keyFile, "-out", requestFile, "-subj", "/CN=registry.example.com"]);
    await run("openssl", ["x509", "-req", "-in", requestFile, "-CA", authority.caFile, "-CAkey", authority.caKeyFile, "-CAcreateserial", "-out", certificateFile, "-days", "2", "-extfile", extensions]);
    const proxy = await server(
      (request, response) => {
        if (isPing(request.url)) return void response.writeHead(200).end("{}");
        sendManifest(response);
      },
      { tunnelTls: { certificateFile, keyFile } },
    );
    const { options } = testOptions({ env: { HTTPS_PROXY: proxy.url }, caFile: authority.caFile });
    const descriptor = await openRepository({ registry: "registry.example.com", repository: "boot/kernel" }, options).resolve("1.0");
    expect(descriptor.digest).toBe(MANIFEST_DIGEST);
    expect(proxy.tunnels).toEqual(["registry.example.com:443"]);
    expect(proxy.requests.every((request) => request.tunnelled && request.host === "registry.example.com")).toBe(true);
  });

  it.skipIf(OUTWARD_ADDRESS === undefined)("goes straight to the hosts NO_PROXY names and through the proxy to the others", async () => {
    const address = OUTWARD_ADDRESS as string;
    const answer = (request: { url: string }, response: ServerResponse) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendManifest(response);
    };
    const proxy = await server(answer);
    // Not loopback, so only NO_PROXY keeps it from the proxy.
    const registry = await server(answer, { address });
    const resolveWith = async (env: Record<string, string>) => {
      const { options } = testOptions({ env: { HTTP_PROXY: proxy.url, ...env }, plainHttp: true });
      const before = { proxied: proxy.requests.length, direct: registry.requests.length };
      expect((await openRepository({ registry: registry.host, repository: "boot/kernel" }, options).resolve("1.0")).digest).toBe(MANIFEST_DIGEST);
      return { proxied: proxy.requests.length - before.proxied, direct: registry.requests.length - before.direct };
    };

    const proxied = await resolveWith({});
    expect(proxied.direct).toBe(0);
    expect(proxied.proxied).toBeGreaterThan(0);
    expect(proxy.requests.at(-1)?.host).toBe(registry.host);

    for (const noProxy of [address, `other.example,.example.com, ${address}`, registry.host, "*"]) {
      expect(await resolveWith({ NO_PROXY: noProxy }), noProxy).toMatchObject({ proxied: 0 });
      expect(await resolveWith({ no_proxy: noProxy }), `no_proxy=${noProxy}`).toMatchObject({ proxied: 0 });
    }
    // Another port of the same host, or another host, is not exempt.
    for (const noProxy of [`${address}:1`, "other.example"]) {
      expect(await resolveWith({ NO_PROXY: noProxy }), noProxy).toMatchObject({ direct: 0 });
    }
  });

  it("never sends loopback registries through a proxy", async () => {
    const proxy = await server((request, response) => void response.writeHead(502).end());
    const registry = await server((request, response) => {
      if (isPing(request.url)) return void response.writeHead(200).end("{}");
      sendManifest(response);
    });
    const { options } = testOptions({ env: { HTTP_PROXY: proxy.url, HTTPS_PROXY: proxy.url } });
    await openRepository({ registry: registry.host, repository: "boot/kernel" }, options).resolve("1.0");
    expect(proxy.requests).toEqual([]);
    expect(proxy.tunnels).toEqual([]);
  });
});

async function writeDockerConfigFile(directory: string, config: unknown): Promise<void> {
  const { mkdir } = await import("node:fs/promises");
  await mkdir(directory, { recursive: true });
  await writeFile(join(directory, "config.json"), JSON.stringify(config), { mode: 0o600 });
}
