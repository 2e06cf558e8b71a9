import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "./commands.ts";
import { writeDockerConfig } from "./docker-config.ts";
import { fetchWithSkopeo, publishWithSkopeo, skopeoRegistryFlags, writeOciLayout } from "./images.ts";
import type { WrittenLayout } from "./images.ts";
import { startRegistry } from "./registry.ts";
import type { RunningRegistry } from "./registry.ts";

const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";

let workDirectory: string;
let layout: WrittenLayout;
const registries: RunningRegistry[] = [];

async function started(options: Parameters<typeof startRegistry>[0] = {}): Promise<RunningRegistry> {
  const registry = await startRegistry(options);
  registries.push(registry);
  return registry;
}

beforeAll(async () => {
  workDirectory = await mkdtemp(join(tmpdir(), "ociboot-registry-test-"));
  layout = await writeOciLayout(join(workDirectory, "layout"), {
    manifests: [
      {
        tag: "v1",
        config: { mediaType: "application/vnd.example.config.v1+json", bytes: '{"commandLine":"console=ttyS0"}' },
        layers: [{ mediaType: "application/vnd.example.kernel", bytes: "not really a kernel" }],
      },
    ],
  });
});

afterAll(async () => {
  await Promise.all(registries.map((registry) => registry.stop()));
  await rm(workDirectory, { recursive: true, force: true });
});

interface CurlResponse {
  exitCode: number | null;
  status: number;
  headers: string;
  body: string;
  stderr: string;
}

/** curl with headers and body kept apart; `status` is 0 when no HTTP response came back. */
async function curl(url: string, args: string[] = []): Promise<CurlResponse> {
  const bodyFile = join(workDirectory, `body-${Math.random().toString(36).slice(2)}`);
  const result = await run("curl", ["-sS", "-D", "-", "-o", bodyFile, "-w", "\n%{http_code}", ...args, url]);
  const body = existsSync(bodyFile) ? await readFile(bodyFile, "utf8") : "";
  await rm(bodyFile, { force: true });
  const lines = result.stdout.trimEnd().split("\n");
  const status = Number(lines.pop());
  return { exitCode: result.code, status, headers: lines.join("\n"), body, stderr: result.stderr };
}

function header(response: CurlResponse, name: string): string | undefined {
  const line = response.headers.split(/\r?\n/).find((candidate) => candidate.toLowerCase().startsWith(`${name.toLowerCase()}:`));
  return line?.slice(name.length + 1).trim();
}

function manifestOf(written: WrittenLayout) {
  const manifest = written.manifests[0];
  if (manifest === undefined) throw new Error("fixture has no manifest");
  return manifest;
}

describe("anonymous registry", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await started();
  });

  it("answers /v2/ and serves what skopeo pushed, byte for byte", async () => {
    expect(registry.host).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(registry.url).toBe(`http://${registry.host}`);
    expect(registry.credentials).toBeUndefined();
    await publishWithSkopeo(layout.directory, "v1", registry, "boot/plain");

    const manifest = manifestOf(layout);
    const response = await curl(`${registry.url}/v2/boot/plain/manifests/v1`, ["-H", `Accept: ${OCI_MANIFEST}`]);
    expect(response.status).toBe(200);
    expect(header(response, "Docker-Content-Digest")).toBe(manifest.descriptor.digest);
    expect(Buffer.from(response.body)).toEqual(manifest.bytes);
  });

  it("keeps blobs where blobDataPath says, and logs the requests it served", async () => {
    const layer = manifestOf(layout).layers[0];
    if (layer === undefined) throw new Error("fixture has no layer");
    expect(await readFile(registry.blobDataPath(layer.digest), "utf8")).toBe("not really a kernel");
    expect(registry.blobDataPath(layer.digest)).toBe(
      join(registry.rootDirectory, "docker/registry/v2/blobs/sha256", layer.digest.slice(7, 9), layer.digest.slice(7), "data"),
    );

    await curl(`${registry.url}/v2/boot/plain/blobs/${layer.digest}`, ["-H", "User-Agent: harness-probe"]);
    await registry.waitForLog(/harness-probe/);
    expect(registry.requests()).toContainEqual({
      method: "GET",
      uri: `/v2/boot/plain/blobs/${layer.digest}`,
      status: 200,
      userAgent: "harness-probe",
    });
    expect(registry.requests().some((request) => request.method === "PUT" && request.uri === "/v2/boot/plain/manifests/v1")).toBe(true);
  });

  it("stops: the process is gone, the port refuses connections and the storage is gone", async () => {
    const doomed = await startRegistry();
    expect(() => process.kill(doomed.pid, 0)).not.toThrow();
    // Frozen, as a test simulating a hung registry leaves it: stop() must still end it promptly.
    process.kill(doomed.pid, "SIGSTOP");
    const stopping = Date.now();
    await doomed.stop();
    await doomed.stop();
    expect(Date.now() - stopping).toBeLessThan(1_500);
    expect(() => process.kill(doomed.pid, 0)).toThrow(/ESRCH/);
    expect(doomed.logs()).toMatch(/\[harness\] docker-registry exited/);
    const response = await curl(`${doomed.url}/v2/`);
    expect(response.status).toBe(0);
    expect(response.exitCode).toBe(7); // curl: failed to connect
    expect(existsSync(doomed.rootDirectory)).toBe(false);
  });
});

describe("basic auth registry", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await started({ auth: "basic" });
  });

  it("refuses requests without credentials with a Basic challenge", async () => {
    const response = await curl(`${registry.url}/v2/`);
    expect(response.status).toBe(401);
    expect(header(response, "WWW-Authenticate")).toMatch(/^Basic realm=/);
  });

  it("accepts the right credentials and refuses a wrong password", async () => {
    const { username, password } = registry.credentials ?? { username: "", password: "" };
    expect((await curl(`${registry.url}/v2/`, ["-u", `${username}:${password}`])).status).toBe(200);
    expect((await curl(`${registry.url}/v2/`, ["-u", `${username}:wrong-${password}`])).status).toBe(401);
  });

  it("lets skopeo push with --creds and refuses skopeo with a wrong password", async () => {
    await publishWithSkopeo(layout.directory, "v1", registry, "boot/basic");
    const { username, password } = registry.credentials ?? { username: "", password: "" };
    const manifest = await curl(`${registry.url}/v2/boot/basic/manifests/v1`, [
      "-u", `${username}:${password}`, "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(manifest.status).toBe(200);

    const refused = await run("skopeo", [
      "copy", "--dest-tls-verify=false", "--dest-creds", `${username}:wrong`,
      `oci:${layout.directory}:v1`, `docker://${registry.host}/boot/refused:v1`,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthorized|authentication required/i);
  });

  it("writes a Docker config.json that a real client authenticates with", async () => {
    const anonymous = await started();
    const configFile = await writeDockerConfig(join(workDirectory, "docker-config"), [registry, anonymous]);
    const config = JSON.parse(await readFile(configFile, "utf8")) as { auths: Record<string, unknown> };
    expect(Object.keys(config.auths)).toEqual([registry.host]);

    const pushed = await run("skopeo", [
      "copy", "--dest-tls-verify=false", "--dest-authfile", configFile,
      `oci:${layout.directory}:v1`, `docker://${registry.host}/boot/from-docker-config:v1`,
    ]);
    expect(pushed).toMatchObject({ code: 0 });
  });
});

describe("token auth registry", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await started({ auth: "token" });
    await publishWithSkopeo(layout.directory, "v1", registry, "boot/token");
  });

  async function fetchToken(scope: string, credentials?: string): Promise<{ status: number; token: string | undefined }> {
    const server = registry.tokenServer;
    if (server === undefined) throw new Error("token variant without token server");
    const query = new URLSearchParams({ service: server.service, scope });
    const response = await curl(`${server.realm}?${query}`, credentials === undefined ? [] : ["-u", credentials]);
    const body = response.status === 200 ? (JSON.parse(response.body) as { token?: string; access_token?: string }) : {};
    if (response.status === 200) expect(body.access_token).toBe(body.token);
    return { status: response.status, token: body.token };
  }

  function userPassword(): string {
    return `${registry.credentials?.username}:${registry.credentials?.password}`;
  }

  it("challenges with Bearer realm and service", async () => {
    const response = await curl(`${registry.url}/v2/`);
    expect(response.status).toBe(401);
    expect(header(response, "WWW-Authenticate")).toBe(
      `Bearer realm="${registry.tokenServer?.realm}",service="${registry.tokenServer?.service}"`,
    );
  });

  it("took skopeo's push through the token server with credentials and a push scope", () => {
    const requests = registry.tokenServer?.requests ?? [];
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((request) => request.hadAuthorization && request.status === 200)).toBe(true);
    expect(requests.flatMap((request) => request.scopes)).toContain("repository:boot/token:pull,push");
    expect(requests[0]?.query).toContain(`service=${registry.tokenServer?.service}`);
  });

  it("serves the manifest for a token with the right scope", async () => {
    const { token } = await fetchToken("repository:boot/token:pull", userPassword());
    const response = await curl(`${registry.url}/v2/boot/token/manifests/v1`, [
      "-H", `Authorization: Bearer ${token}`, "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(response.status).toBe(200);
    expect(header(response, "Docker-Content-Digest")).toBe(manifestOf(layout).descriptor.digest);
  });

  it("refuses a token for another repository as insufficient scope", async () => {
    const { token } = await fetchToken("repository:boot/other:pull", userPassword());
    const response = await curl(`${registry.url}/v2/boot/token/manifests/v1`, [
      "-H", `Authorization: Bearer ${token}`, "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(response.status).toBe(401);
    expect(header(response, "WWW-Authenticate")).toContain('error="insufficient_scope"');
    expect(header(response, "WWW-Authenticate")).toContain('scope="repository:boot/token:pull"');
  });

  it("refuses a token signed by a key the registry does not trust", async () => {
    const stranger = await startRegistry({ auth: "token" });
    try {
      const forged = stranger.tokenServer?.issueToken([{ type: "repository", name: "boot/token", actions: ["pull"] }]);
      const response = await curl(`${registry.url}/v2/boot/token/manifests/v1`, [
        "-H", `Authorization: Bearer ${forged}`, "-H", `Accept: ${OCI_MANIFEST}`,
      ]);
      expect(response.status).toBe(401);
    } finally {
      await stranger.stop();
    }
  });

  it("gives wrong credentials 401 and anonymous requests a token without access", async () => {
    expect((await fetchToken("repository:boot/token:pull", "ociboot-tester:wrong")).status).toBe(401);
    const anonymous = await fetchToken("repository:boot/token:pull");
    expect(anonymous.status).toBe(200);
    const response = await curl(`${registry.url}/v2/boot/token/manifests/v1`, [
      "-H", `Authorization: Bearer ${anonymous.token}`, "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(response.status).toBe(401);
    const last = registry.tokenServer?.requests.at(-1);
    expect(last).toMatchObject({ hadAuthorization: false, username: undefined, granted: [] });
  });

  it("grants anonymous pull, and only pull, when allowAnonymousPull is set", async () => {
    const open = await started({ auth: "token", allowAnonymousPull: true });
    await publishWithSkopeo(layout.directory, "v1", open, "boot/public");
    await fetchWithSkopeo(open, "boot/public", "v1", join(workDirectory, "anonymous-pull"), { anonymous: true });
    const anonymousGrants = (open.tokenServer?.requests ?? [])
      .filter((request) => !request.hadAuthorization)
      .flatMap((request) => request.granted);
    expect(anonymousGrants.length).toBeGreaterThan(0);
    for (const grant of anonymousGrants) expect(grant).toEqual({ type: "repository", name: "boot/public", actions: ["pull"] });

    const anonymousPush = await run("skopeo", [
      "copy", ...skopeoRegistryFlags("dest", open, { anonymous: true }),
      `oci:${layout.directory}:v1`, `docker://${open.host}/boot/public:pushed-anonymously`,
    ]);
    expect(anonymousPush.code).not.toBe(0);
    expect(anonymousPush.stderr).toMatch(/unauthorized|authentication required/i);
  });
});

describe("token auth registry with a policy", () => {
  it("grants what the policy allows: push refused on a read-only repository", async () => {
    const registry = await started({
      auth: "token",
      tokenPolicy: ({ username, name, requestedActions }) =>
        username === undefined ? [] : requestedActions.filter((action) => action === "pull" || name !== "boot/read-only"),
    });
    await publishWithSkopeo(layout.directory, "v1", registry, "boot/writable");
    const refused = await run("skopeo", [
      "copy", ...skopeoRegistryFlags("dest", registry), `oci:${layout.directory}:v1`, `docker://${registry.host}/boot/read-only:v1`,
    ]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/unauthorized|authentication required|denied/i);
    const readOnlyGrants = registry.tokenServer?.requests
      .flatMap((request) => request.granted)
      .filter((entry) => entry.name === "boot/read-only");
    expect(readOnlyGrants?.length).toBeGreaterThan(0);
    expect(readOnlyGrants?.every((entry) => entry.actions.join() === "pull")).toBe(true);
  });
});

describe("TLS registry", () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await started({ tls: true });
  });

  it("verifies with the test CA and fails verification without it", async () => {
    expect(registry.url).toBe(`https://${registry.host}`);
    const caFile = registry.caFile ?? "";
    expect(await readFile(caFile, "utf8")).toContain("BEGIN CERTIFICATE");
    expect((await curl(`${registry.url}/v2/`, ["--cacert", caFile])).status).toBe(200);
    expect((await curl(`https://localhost:${registry.host.split(":")[1]}/v2/`, ["--cacert", caFile])).status).toBe(200);

    const unverified = await curl(`${registry.url}/v2/`);
    expect(unverified.status).toBe(0);
    expect(unverified.exitCode).toBe(60); // curl: peer certificate cannot be authenticated
  });

  it("accepts a skopeo push that trusts the CA through --cert-dir", async () => {
    await publishWithSkopeo(layout.directory, "v1", registry, "boot/tls");
    const response = await curl(`${registry.url}/v2/boot/tls/manifests/v1`, [
      "--cacert", registry.caFile ?? "", "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(response.status).toBe(200);
  });

  it("combines with token auth: the realm speaks TLS under the same CA", async () => {
    const secured = await started({ tls: true, auth: "token" });
    expect(secured.tokenServer?.realm).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/token$/);
    await publishWithSkopeo(layout.directory, "v1", secured, "boot/tls-token");
    const query = new URLSearchParams({ service: secured.tokenServer?.service ?? "", scope: "repository:boot/tls-token:pull" });
    const tokenResponse = await curl(`${secured.tokenServer?.realm}?${query}`, [
      "--cacert", secured.caFile ?? "", "-u", `${secured.credentials?.username}:${secured.credentials?.password}`,
    ]);
    const { token } = JSON.parse(tokenResponse.body) as { token: string };
    const response = await curl(`${secured.url}/v2/boot/tls-token/manifests/v1`, [
      "--cacert", secured.caFile ?? "", "-H", `Authorization: Bearer ${token}`, "-H", `Accept: ${OCI_MANIFEST}`,
    ]);
    expect(response.status).toBe(200);
  });
});

describe("pull-through cache registry", () => {
  it("serves an image pushed to the origin, fetching it from there", async () => {
    const origin = await started();
    await publishWithSkopeo(layout.directory, "v1", origin, "boot/mirrored");
    const mirror = await started({ proxy: { remoteUrl: origin.url } });

    const pulled = join(workDirectory, "through-mirror");
    await fetchWithSkopeo(mirror, "boot/mirrored", "v1", pulled, { layoutTag: "v1" });
    const index = JSON.parse(await readFile(join(pulled, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]?.digest).toBe(manifestOf(layout).descriptor.digest);
    expect(origin.requests().some((request) => request.uri === "/v2/boot/mirrored/manifests/v1")).toBe(true);
  });

  // distribution 2.8 hands proxy credentials only to Bearer realms, so a basic-auth origin cannot be cached.
  it("authenticates to an origin with token auth and TLS", async () => {
    const origin = await started({ auth: "token", tls: true });
    await publishWithSkopeo(layout.directory, "v1", origin, "boot/private");
    const mirror = await started({
      proxy: {
        remoteUrl: origin.url,
        username: origin.credentials?.username ?? "",
        password: origin.credentials?.password ?? "",
        caFile: origin.caFile ?? "",
      },
    });
    const response = await curl(`${mirror.url}/v2/boot/private/manifests/v1`, ["-H", `Accept: ${OCI_MANIFEST}`]);
    expect(response.status).toBe(200);
    expect(header(response, "Docker-Content-Digest")).toBe(manifestOf(layout).descriptor.digest);
  });

  it("refuses pushes, as a cache does", async () => {
    const origin = await started();
    const mirror = await started({ proxy: { remoteUrl: origin.url } });
    const pushed = await run("skopeo", [
      "copy", ...skopeoRegistryFlags("dest", mirror), `oci:${layout.directory}:v1`, `docker://${mirror.host}/boot/pushed:v1`,
    ]);
    expect(pushed.code).not.toBe(0);
    expect(pushed.stderr).toMatch(/unsupported/i);
  });
});
