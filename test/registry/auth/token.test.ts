import { mkdtemp, rm } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { isOcibootError } from "../../../src/errors.ts";
import { MediaType } from "../../../src/oci/mediatypes.ts";
import { checkTokenRealm, hostKind } from "../../../src/registry/auth/realm.ts";
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

/** An IPv4 address of this machine that is not loopback, where there is one. */
const OUTWARD_ADDRESS = Object.values(networkInterfaces())
  .flat()
  .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal)?.address;

/** A registry that always challenges for a token at `realm`. */
async function challengingRegistry(realm: () => string, address?: string): Promise<FaultServer> {
  return server(
    (request, response) => {
      const token = request.headers.authorization;
      if (token === "Bearer good") return sendManifest(response);
      sendRegistryError(response, 401, "UNAUTHORIZED", "authentication required", { "www-authenticate": `Bearer realm="${realm()}",service="s"` });
    },
    address === undefined ? {} : { address },
  );
}

async function goodTokenServer(address?: string): Promise<FaultServer> {
  return server((request, response) => void response.writeHead(200, { "content-type": "application/json" }).end('{"token":"good"}'), address === undefined ? {} : { address });
}

async function resolveWith(registry: FaultServer, extra: Partial<RegistryOptions> = {}): Promise<unknown> {
  return openRepository({ registry: registry.host, repository: "a/b" }, options({ username: "me", password: "pw", plainHttp: true, ...extra }))
    .resolve("1.0")
    .then(() => "resolved")
    .catch((caught: unknown) => caught);
}

describe("token realm host", () => {
  it("classifies hosts by address range, IPv4-mapped IPv6 and localhost names included", () => {
    expect(hostKind("0.0.0.0")).toBe("unspecified");
    expect(hostKind("[::]")).toBe("unspecified");
    expect(hostKind("169.254.169.254")).toBe("link-local");
    expect(hostKind("[fe80::1]")).toBe("link-local");
    expect(hostKind("[febf::1]")).toBe("link-local");
    expect(hostKind("127.0.0.1")).toBe("loopback");
    expect(hostKind("127.9.9.9")).toBe("loopback");
    expect(hostKind("[::1]")).toBe("loopback");
    expect(hostKind("[::ffff:7f00:1]")).toBe("loopback");
    expect(hostKind("[::ffff:a9fe:a9fe]")).toBe("link-local");
    expect(hostKind("localhost")).toBe("loopback");
    expect(hostKind("auth.localhost")).toBe("loopback");
    expect(hostKind("auth.docker.io")).toBe("elsewhere");
    expect(hostKind("192.0.2.2")).toBe("elsewhere");
    expect(hostKind("[fec0::1]")).toBe("elsewhere");
  });

  it("judges a realm name by what it resolves to, and allows the registry's own host", async () => {
    const resolver = async (name: string) => (name === "metadata.example" ? ["169.254.169.254"] : name === "lo.example" ? ["127.0.0.1"] : ["192.0.2.9"]);
    const refuse = (realm: string, registry: string) => checkTokenRealm(new URL(realm), new URL(registry), resolver).then(() => "allowed", (error: Error) => error.message);
    expect(await refuse("https://metadata.example/token", "https://registry.example")).toMatch(/link-local/);
    expect(await refuse("https://lo.example/token", "https://registry.example")).toMatch(/on loopback while the registry registry.example is not/);
    expect(await refuse("https://lo.example/token", "https://localhost:5000")).toBe("allowed");
    expect(await refuse("https://auth.example/token", "https://registry.example")).toBe("allowed");
    expect(await refuse("http://169.254.169.254/token", "http://169.254.169.254:5000")).toBe("allowed");
    expect(await refuse("http://0.0.0.0/token", "http://127.0.0.1:5000")).toMatch(/unspecified address/);
  });

  it.each(["http://169.254.169.254/token", "http://[fe80::1]:9/token", "http://[::ffff:169.254.169.254]/token"])(
    "refuses the link-local realm %s of a loopback registry, with no request to it",
    async (realm) => {
      const registry = await challengingRegistry(() => realm);
      const error = await resolveWith(registry);
      expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
      expect((error as Error).message).toMatch(/is a link-local address .*refusing to send credentials there/);
    },
  );

  it("refuses a realm at 0.0.0.0 even though a token server listens there, and sends it nothing", async () => {
    const tokens = await goodTokenServer("0.0.0.0");
    const registry = await challengingRegistry(() => `http://0.0.0.0:${tokens.port}/token`);
    const error = await resolveWith(registry);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    expect((error as Error).message).toMatch(/unspecified address/);
    expect(tokens.requests).toHaveLength(0);
  });

  it.skipIf(OUTWARD_ADDRESS === undefined)("refuses a loopback realm of a registry that is not on loopback, and sends it nothing", async () => {
    const tokens = await goodTokenServer();
    for (const realm of [`http://127.0.0.1:${tokens.port}/token`, `http://localhost:${tokens.port}/token`, `http://[::ffff:127.0.0.1]:${tokens.port}/token`]) {
      const registry = await challengingRegistry(() => realm, OUTWARD_ADDRESS);
      const error = await resolveWith(registry);
      expect(isOcibootError(error, "UNAUTHORIZED"), String(error)).toBe(true);
      expect((error as Error).message).toMatch(/on loopback while the registry .* is not/);
    }
    expect(tokens.requests).toHaveLength(0);
  });

  it.skipIf(OUTWARD_ADDRESS === undefined)("allows a realm on the registry's own host, and loopback beside loopback", async () => {
    const ownHostTokens = await goodTokenServer(OUTWARD_ADDRESS);
    const outward = await challengingRegistry(() => `http://${OUTWARD_ADDRESS}:${ownHostTokens.port}/token`, OUTWARD_ADDRESS);
    expect(await resolveWith(outward)).toBe("resolved");
    const loopbackTokens = await goodTokenServer();
    const loopback = await challengingRegistry(() => `http://localhost:${loopbackTokens.port}/token`);
    expect(await resolveWith(loopback)).toBe("resolved");
    expect(ownHostTokens.requests).toHaveLength(1);
    expect(loopbackTokens.requests).toHaveLength(1);
  });
});

describe("token requests and redirects", () => {
  it("does not follow a redirect from the realm: the login never reaches the next host", async () => {
    const elsewhere = await goodTokenServer();
    const tokens = await server((request, response) => void response.writeHead(302, { location: `${elsewhere.url}/token?stolen=1` }).end());
    const registry = await challengingRegistry(() => `${tokens.url}/token`);
    const error = await resolveWith(registry);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    expect((error as Error).message).toMatch(/answered 302 \(a redirect\); ociboot does not follow redirects for token requests/);
    expect(tokens.requests).toHaveLength(1);
    expect(tokens.requests[0]!.headers.authorization).toBe(`Basic ${Buffer.from("me:pw").toString("base64")}`);
    expect(elsewhere.requests).toHaveLength(0);
  });

  it("does not follow a 307 that would re-send an identity token's refresh POST", async () => {
    const elsewhere = await goodTokenServer();
    const tokens = await server((request, response) => void response.writeHead(307, { location: `${elsewhere.url}/token` }).end());
    const registry = await challengingRegistry(() => `${tokens.url}/token`);
    const config = join(work, "identity-redirect");
    const { mkdir, writeFile } = await import("node:fs/promises");
    await mkdir(config, { recursive: true });
    await writeFile(join(config, "config.json"), JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from("u:").toString("base64"), identitytoken: "refresh-me" } } }));
    const error = await openRepository({ registry: registry.host, repository: "a/b" }, options({ env: { DOCKER_CONFIG: config } }))
      .resolve("1.0")
      .catch((caught: unknown) => caught);
    expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
    expect(tokens.requests.map((request) => request.method)).toEqual(["POST"]);
    expect(elsewhere.requests).toHaveLength(0);
  });
});
