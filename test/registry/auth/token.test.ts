import { mkdtemp, rm } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isOcibootError } from "../../../src/errors.ts";
import { MediaType } from "../../../src/oci/mediatypes.ts";
import { openRepository, type RegistryOptions } from "../../../src/registry/repository.ts";
import { createCertificateAuthority, issueServerCertificate } from "../../harness/certificates.ts";
import { type FaultServer, type RecordedRequest, sendRegistryError, startFaultServer } from "../../harness/fault-server.ts";

const MANIFEST = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] }));
const SERVICE = "my registry & co";
const servers: FaultServer[] = [];
let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-token-"));
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.stop()));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function server(...args: Parameters<typeof startFaultServer>): Promise<FaultServer> {
  const started = await startFaultServer(...args);
  servers.push(started);
  return started;
}

function sendManifest(response: ServerResponse): void {
  response.writeHead(200, { "content-type": MediaType.ociIndex, "content-length": String(MANIFEST.length) }).end(MANIFEST);
}

/** A registry that wants `Bearer <token>` where the token names the scope it was issued for. */
async function bearerRegistry(realm: () => string, accept: (token: string, request: RecordedRequest) => boolean): Promise<FaultServer> {
  return server((request, response) => {
    const scope = `repository:${request.url.split("/").slice(2, -2).join("/")}:pull`;
    const challenge = `Bearer realm="${realm()}",service="${SERVICE}",scope="${scope}"`;
    const token = request.headers.authorization?.replace(/^Bearer /, "");
    if (token === undefined || !accept(token, request)) {
      return sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": challenge });
    }
    sendManifest(response);
  });
}

function options(extra: Partial<RegistryOptions> = {}): RegistryOptions {
  return { env: {}, homeDir: work, retry: { attempts: 1 }, ...extra };
}

describe("bearer token flow", () => {
  it("URL-encodes service and scope, accepts access_token, caches per scope and honours expires_in", async () => {
    let issued = 0;
    const tokens = await server((request, response) => {
      issued++;
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: `t${issued}`, expires_in: 120 }));
    });
    const registry = await bearerRegistry(() => `${tokens.url}/token`, (token) => token.startsWith("t"));
    let now = 1_000_000;
    const shared = options({ now: () => now });
    const first = openRepository({ registry: registry.host, repository: "team/boot image".replace(" ", "-") }, shared);
    await first.resolve("1.0");
    const query = new URL(tokens.requests[0]!.url, tokens.url).searchParams;
    expect(query.get("service")).toBe(SERVICE);
    expect(query.getAll("scope")).toEqual(["repository:team/boot-image:pull"]);
    expect(tokens.requests[0]!.url).toContain("service=my+registry+%26+co");
    expect(tokens.requests[0]!.url).toContain("scope=repository%3Ateam%2Fboot-image%3Apull");

    await first.resolve("1.0");
    expect(tokens.requests).toHaveLength(1);
    // Another repository is another scope: another token.
    await openRepository({ registry: registry.host, repository: "team/other" }, shared).resolve("1.0");
    expect(tokens.requests).toHaveLength(2);
    // Past expires_in (less a margin), the token is fetched again.
    now += 115_000;
    await first.resolve("1.0");
    expect(tokens.requests).toHaveLength(3);
    expect(registry.requests.filter((request) => request.url.includes("/manifests/") && request.headers.authorization === undefined)).toHaveLength(1);
  });

  it("retries once with a fresh token after a 401, never more", async () => {
    const tokens = await server((request, response) => {
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "never-good" }));
    });
    const registry = await bearerRegistry(() => `${tokens.url}/token`, () => false);
    const error = await openRepository({ registry: registry.host, repository: "a/b" }, options())
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    expect(registry.requests.filter((request) => request.url.includes("/manifests/"))).toHaveLength(2);
    expect(tokens.requests).toHaveLength(1);
  });

  it("sends Basic credentials to the realm and widens the scope on insufficient_scope", async () => {
    const tokens = await server((request, response) => {
      if (request.headers.authorization !== `Basic ${Buffer.from("me:pw").toString("base64")}`) {
        return void response.writeHead(401).end();
      }
      const scopes = new URL(request.url, tokens.url).searchParams.getAll("scope");
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: scopes.join("|") }));
    });
    const registry = await server((request, response) => {
      const token = request.headers.authorization?.replace(/^Bearer /, "") ?? "";
      if (!token.includes("repository:extra:pull")) {
        return sendRegistryError(response, 401, "UNAUTHORIZED", "insufficient scope", {
          "www-authenticate": `Bearer realm="${tokens.url}/token",service="s",scope="repository:a/b:pull repository:extra:pull",error="insufficient_scope"`,
        });
      }
      sendManifest(response);
    });
    await openRepository({ registry: registry.host, repository: "a/b" }, options({ username: "me", password: "pw" })).resolve("1.0");
    expect(new URL(tokens.requests[0]!.url, tokens.url).searchParams.getAll("scope").sort()).toEqual(["repository:a/b:pull", "repository:extra:pull"]);
  });

  it("exchanges an identity token with an OAuth2 refresh-token POST", async () => {
    const tokens = await server((request, response) => {
      const form = new URLSearchParams(request.body.toString());
      if (request.method !== "POST" || form.get("grant_type") !== "refresh_token" || form.get("refresh_token") !== "refresh-me") {
        return void response.writeHead(400).end();
      }
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ access_token: "from-refresh" }));
    });
    const registry = await bearerRegistry(() => `${tokens.url}/token`, (token) => token === "from-refresh");
    const config = join(work, "identity");
    const { mkdir, writeFile } = await import("node:fs/promises");
    await mkdir(config, { recursive: true });
    await writeFile(join(config, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("u:").toString("base64"), identitytoken: "refresh-me" } } }));
    await openRepository({ registry: registry.host, repository: "a/b" }, options({ env: { DOCKER_CONFIG: config } })).resolve("1.0");
    expect(tokens.requests).toHaveLength(1);
  });

  it("refuses a plain-HTTP realm for an HTTPS registry without contacting it", async () => {
    const authority = await createCertificateAuthority(join(work, "ca"));
    const certificate = await issueServerCertificate(authority, join(work, "server"));
    const tokens = await server((request, response) => void response.writeHead(200).end('{"token":"x"}'));
    const registry = await server(
      (request, response) =>
        sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", {
          "www-authenticate": `Bearer realm="http://127.0.0.1:${tokens.port}/token",service="s"`,
        }),
      { tls: certificate },
    );
    const error = await openRepository({ registry: registry.host, repository: "a/b" }, options({ caFile: authority.caFile, username: "me", password: "pw" }))
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    expect((error as Error).message).toMatch(/plain HTTP for an HTTPS registry/);
    expect(tokens.requests).toHaveLength(0);
  });

  it("refuses a token response over 1 MiB", async () => {
    const tokens = await server((request, response) => {
      response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ token: "x".repeat(2 * 1024 * 1024) }));
    });
    const registry = await bearerRegistry(() => `${tokens.url}/token`, () => true);
    const error = await openRepository({ registry: registry.host, repository: "a/b" }, options())
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "REGISTRY")).toBe(true);
    expect((error as Error).message).toMatch(/larger than 1048576 bytes/);
  });

  it("sends a CI bearer token as is and does not fetch another", async () => {
    const registry = await bearerRegistry(() => "http://127.0.0.1:1/never", (token) => token === "ci-token");
    await openRepository(
      { registry: registry.host, repository: "a/b" },
      options({ env: { OCIBOOT_REGISTRY_HOST: registry.host, OCIBOOT_REGISTRY_TOKEN: "ci-token" } }),
    ).resolve("1.0");
    expect(registry.requests.filter((request) => request.url.includes("/manifests/"))).toHaveLength(1);
  });
});
