import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_RETRY_POLICY } from "../../src/retry.ts";
import { startFaultServer, type FaultServer, type RecordedRequest } from "../harness/fault-server.ts";
import { ociboot } from "./ociboot-binary.ts";
import { CONFIG, digestOf, KERNEL, MANIFEST } from "../harness/fault-fixture.ts";

/** How a failing kernel GET fails: the connection drops before any answer, or the body is cut halfway. */
type Failure = "reset" | "cut";

describe("one retry policy per request chain: the number of requests for a failing blob is bounded by the policy", () => {
  let work: string;
  let server: FaultServer;
  let failuresLeft = 0;
  let failure: Failure = "reset";

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-retry-"));
    server = await startFaultServer((request, response) => {
      const send = (type: string, body: Buffer) => {
        response.writeHead(200, { "content-type": type, "content-length": String(body.length), "docker-content-digest": digestOf(body) });
        response.end(request.method === "HEAD" ? undefined : body);
      };
      if (request.url === "/v2/") return send("application/json", Buffer.from("{}"));
      if (request.url.includes("/manifests/")) return send("application/vnd.oci.image.manifest.v1+json", MANIFEST);
      if (request.url.includes(digestOf(CONFIG).slice(7))) return send("application/octet-stream", CONFIG);
      if (request.url.includes(digestOf(KERNEL).slice(7))) {
        if (failuresLeft <= 0) return send("application/octet-stream", KERNEL);
        failuresLeft--;
        if (failure === "reset") return void response.socket?.destroy();
        response.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(KERNEL.length) });
        response.write(KERNEL.subarray(0, KERNEL.length / 2), () => response.socket?.destroy());
        return;
      }
      response.writeHead(404, { "content-type": "application/json" });
      response.end('{"errors":[{"code":"NOT_FOUND","message":"no"}]}');
    });
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const kernelGets = (since: number) =>
    server.requests.slice(since).filter((request: RecordedRequest) => request.method === "GET" && request.url.includes(digestOf(KERNEL).slice(7))).length;

  for (const mode of ["reset", "cut"] as const) {
    it(`fetch (${mode}): two failures then success take 3 requests; failing for ever takes exactly ${DEFAULT_RETRY_POLICY.attempts}`, async () => {
      failure = mode;
      failuresLeft = 2;
      let since = server.requests.length;
      const good = await ociboot(["fetch", `${server.host}/os/flaky:1`, "-o", join(work, `fetch-${mode}`), "--quiet"]);
      expect(good.code, good.stderr).toBe(0);
      expect(await readFile(join(work, `fetch-${mode}`, "vmlinuz"))).toEqual(KERNEL);
      expect(kernelGets(since)).toBe(3);

      failuresLeft = Number.POSITIVE_INFINITY;
      since = server.requests.length;
      const bad = await ociboot(["fetch", `${server.host}/os/flaky:1`, "-o", join(work, `fetch-${mode}-never`), "--quiet"]);
      expect(bad.code).toBe(7);
      expect(kernelGets(since)).toBe(DEFAULT_RETRY_POLICY.attempts);
    });
  }

  it(`copy into a layout and into an archive: failing for ever takes exactly ${DEFAULT_RETRY_POLICY.attempts} requests each`, async () => {
    failure = "cut";
    failuresLeft = Number.POSITIVE_INFINITY;
    for (const destination of [`oci:${join(work, "layout")}:x`, `oci-archive:${join(work, "archive.tar")}:x`]) {
      const since = server.requests.length;
      const result = await ociboot(["copy", `${server.host}/os/flaky:1`, destination, "--quiet"]);
      expect(result.code, destination).toBe(7);
      expect(kernelGets(since), destination).toBe(DEFAULT_RETRY_POLICY.attempts);
    }
  });
});
