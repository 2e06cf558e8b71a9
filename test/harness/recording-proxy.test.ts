import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "./commands.ts";
import { publishWithSkopeo, writeOciLayout } from "./images.ts";
import type { WrittenLayout } from "./images.ts";
import { startRecordingProxy } from "./recording-proxy.ts";
import type { RecordingProxy } from "./recording-proxy.ts";
import { startRegistry } from "./registry.ts";
import type { RunningRegistry } from "./registry.ts";

const LAYER_TEXT = "0123456789".repeat(1000);

let workDirectory: string;
let layout: WrittenLayout;
const registries: RunningRegistry[] = [];
const relays: RecordingProxy[] = [];

beforeAll(async () => {
  workDirectory = await mkdtemp(join(tmpdir(), "ociboot-relay-test-"));
  layout = await writeOciLayout(join(workDirectory, "layout"), {
    manifests: [
      {
        tag: "v1",
        config: { mediaType: "application/vnd.oci.empty.v1+json", bytes: "{}" },
        layers: [{ mediaType: "application/octet-stream", bytes: LAYER_TEXT }],
      },
    ],
  });
});

afterAll(async () => {
  await Promise.all(relays.map((relay) => relay.stop()));
  await Promise.all(registries.map((registry) => registry.stop()));
  await rm(workDirectory, { recursive: true, force: true });
});

async function relayInFrontOf(options: Parameters<typeof startRegistry>[0] = {}) {
  const registry = await startRegistry(options);
  registries.push(registry);
  const relay = await startRecordingProxy(registry);
  relays.push(relay);
  return { registry, relay };
}

function layerDigest(): string {
  const digest = layout.manifests[0]?.layers[0]?.digest;
  if (digest === undefined) throw new Error("fixture has no layer");
  return digest;
}

describe("recording proxy", () => {
  let relay: RecordingProxy;
  beforeAll(async () => {
    ({ relay } = await relayInFrontOf());
    // Pushing through the relay proves upload URLs the registry hands out lead back through it.
    await publishWithSkopeo(layout.directory, "v1", { host: relay.host }, "boot/relayed");
  });

  it("relays pushes and records the headers the registry does not log", async () => {
    expect(relay.requests.some((request) => request.method === "PATCH" && request.status === 202)).toBe(true);
    expect(relay.requests.some((request) => request.method === "PUT" && request.path === "/v2/boot/relayed/manifests/v1")).toBe(true);

    const result = await run("curl", ["-sS", "-H", "Range: bytes=10-19", `${relay.url}/v2/boot/relayed/blobs/${layerDigest()}`]);
    expect(result.stdout).toBe("0123456789");
    const ranged = relay.requests.at(-1);
    expect(ranged).toMatchObject({ method: "GET", status: 206, fault: undefined });
    expect(ranged?.headers["range"]).toBe("bytes=10-19");
  });

  it("cuts a blob download after the given number of bytes, once", async () => {
    relay.inject({ method: "GET", path: /\/blobs\/sha256:/, fault: { kind: "cut", afterBytes: 1000 } });
    const url = `${relay.url}/v2/boot/relayed/blobs/${layerDigest()}`;
    const cut = await run("curl", ["-sS", url]);
    expect(cut.code).toBe(18); // curl: transfer closed with outstanding read data remaining
    expect(cut.stdout).toBe(LAYER_TEXT.slice(0, 1000));

    const whole = await run("curl", ["-sS", url]);
    expect(whole.code).toBe(0);
    expect(whole.stdout).toBe(LAYER_TEXT);
  });

  it("stalls a download after the given number of bytes, keeping the connection open", async () => {
    relay.inject({ method: "GET", path: /\/blobs\/sha256:/, fault: { kind: "stall", afterBytes: 10 } });
    const started = Date.now();
    const stalled = await run("curl", ["-sS", "--max-time", "1", `${relay.url}/v2/boot/relayed/blobs/${layerDigest()}`]);
    expect(stalled.code).toBe(28); // curl: operation timed out
    expect(stalled.stdout).toBe("0123456789");
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it("relays a body shorter than the fault point whole", async () => {
    relay.inject({ method: "GET", path: /\/blobs\/sha256:/, fault: { kind: "cut", afterBytes: LAYER_TEXT.length + 1 } });
    const whole = await run("curl", ["-sS", `${relay.url}/v2/boot/relayed/blobs/${layerDigest()}`]);
    expect(whole).toMatchObject({ code: 0, stdout: LAYER_TEXT });
    expect(relay.requests.at(-1)?.fault).toBe("cut");
  });

  it("answers with an injected status without asking the registry", async () => {
    relay.inject({
      path: /\/manifests\/v1$/,
      fault: { kind: "respond", status: 429, headers: { "retry-after": "1" }, body: "slow down" },
      times: 2,
    });
    const manifestUrl = `${relay.url}/v2/boot/relayed/manifests/v1`;
    const accept = ["-H", "Accept: application/vnd.oci.image.manifest.v1+json"];
    for (let attempt = 0; attempt < 2; attempt += 1) {
      const limited = await run("curl", ["-sS", "-i", ...accept, manifestUrl]);
      expect(limited.stdout).toMatch(/^HTTP\/1\.1 429/);
      expect(limited.stdout.toLowerCase()).toContain("retry-after: 1");
    }
    const passed = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", ...accept, manifestUrl]);
    expect(passed.stdout).toBe("200");
    expect(relay.requests.slice(-3).map((request) => [request.status, request.fault])).toEqual([
      [429, "respond"],
      [429, "respond"],
      [200, undefined],
    ]);
  });

  it("relays to a TLS registry and shows the Authorization a client sent", async () => {
    const { registry, relay: secureRelay } = await relayInFrontOf({ tls: true, auth: "basic" });
    const credentials = `${registry.credentials?.username}:${registry.credentials?.password}`;
    const result = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-u", credentials, `${secureRelay.url}/v2/`]);
    expect(result.stdout).toBe("200");
    expect(secureRelay.requests.at(-1)?.headers["authorization"]).toBe(`Basic ${Buffer.from(credentials).toString("base64")}`);
  });
});
