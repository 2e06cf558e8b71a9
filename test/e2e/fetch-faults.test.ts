import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startFaultServer, type FaultServer } from "../harness/fault-server.ts";
import { ociboot } from "./ociboot-binary.ts";
import { CONFIG, digestOf, KERNEL, MANIFEST } from "../harness/fault-fixture.ts";

/** How the misbehaving registry answers for the kernel blob; chunked answers carry no Content-Length. */
type KernelAnswer = { length: "truncated" | "over-long"; chunked: boolean };

/**
 * A registry that serves a correct manifest and config but a kernel body that is short or long
 * while its headers are self-consistent: only the descriptor can tell.
 */
function misbehavingRegistry(answer: () => KernelAnswer) {
  return (request: { method: string; url: string }, response: import("node:http").ServerResponse) => {
    const send = (status: number, type: string, body: Buffer, chunked = false) => {
      const length = chunked ? {} : { "content-length": String(body.length) };
      response.writeHead(status, { "content-type": type, ...length, "docker-content-digest": digestOf(body) });
      response.end(request.method === "HEAD" ? undefined : body);
    };
    if (request.url === "/v2/") return send(200, "application/json", Buffer.from("{}"));
    if (request.url.includes("/manifests/")) return send(200, "application/vnd.oci.image.manifest.v1+json", MANIFEST);
    if (request.url.includes(digestOf(CONFIG).slice(7))) return send(200, "application/octet-stream", CONFIG);
    if (request.url.includes(digestOf(KERNEL).slice(7))) {
      const { length, chunked } = answer();
      const body = length === "truncated" ? KERNEL.subarray(0, KERNEL.length - 1000) : Buffer.concat([KERNEL, Buffer.alloc(1000, 9)]);
      return send(200, "application/octet-stream", body, chunked);
    }
    return send(404, "application/json", Buffer.from('{"errors":[{"code":"NOT_FOUND","message":"no"}]}'));
  };
}

describe("fetch from a registry that sends the wrong number of bytes", () => {
  let work: string;
  let server: FaultServer;
  let answer: KernelAnswer = { length: "truncated", chunked: false };
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-bytes-"));
    server = await startFaultServer(misbehavingRegistry(() => answer));
  });
  afterAll(async () => {
    await server?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  const cases: Array<[KernelAnswer, RegExp]> = [
    [{ length: "truncated", chunked: false }, /sends 261144 bytes but 262144 are expected/],
    [{ length: "over-long", chunked: false }, /sends 263144 bytes but 262144 are expected/],
    [{ length: "truncated", chunked: true }, /received 261144 of 262144 bytes/],
    [{ length: "over-long", chunked: true }, /more than the declared 262144 bytes/],
  ];
  for (const [kind, message] of cases) {
    it(`fails a ${kind.length} ${kind.chunked ? "chunked" : "sized"} body with the integrity exit code and leaves no kernel file`, async () => {
      answer = kind;
      const out = join(work, `${kind.length}-${kind.chunked}`);
      const result = await ociboot(["fetch", `${server.host}/os/bad:v1`, "-o", out]);
      expect(result.stderr).toMatch(message);
      expect(result.code).toBe(5);
      expect(existsSync(join(out, "vmlinuz"))).toBe(false);
      expect((await readdir(out)).filter((name) => name.endsWith(".partial"))).toEqual([]);
    });
  }
});
