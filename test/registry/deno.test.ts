import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/oci/digest.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { run } from "../harness/commands.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { sha256OfStream } from "./helpers.ts";

const SIZE = 7 * 1024 * 1024 + 333;

// Node runs the same client in repository.test.ts; this proves the Deno runtime.
describe("push and pull with streams under Deno", () => {
  const registries: RunningRegistry[] = [];
  beforeAll(async () => {
    registries.push(await startRegistry({ auth: "basic" }), await startRegistry({ tls: true, auth: "token" }));
  });
  afterAll(async () => {
    await Promise.all(registries.map((registry) => registry.stop()));
  });

  for (const runtime of ["deno"] as const) {
    for (const variant of ["basic auth, plain HTTP", "token auth, TLS"] as const) {
      it(`${runtime}: ${variant}`, async () => {
        const registry = variant.startsWith("basic") ? registries[0]! : registries[1]!;
        const input = {
          registry: registry.host,
          repository: `${runtime}/boot`,
          size: SIZE,
          ...(registry.caFile === undefined ? {} : { caFile: registry.caFile }),
          ...registry.credentials,
        };
        const script = "test/registry/deno-push-pull.ts";
        const result = await run("npx", ["deno", "run", "-A", script, JSON.stringify(input)], { timeoutMs: 120_000 });
        expect(result.code, result.stderr).toBe(0);
        const output = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, Record<string, unknown> | string>;
        expect(output["runtime"]).toBe(runtime);
        const checker: RegistryOptions = { env: {}, homeDir: "/nonexistent", ...(registry.caFile === undefined ? {} : { caFile: registry.caFile }), ...registry.credentials };
        try {
          for (const strategy of ["monolithic", "chunked"] as const) {
            const seen = output[strategy] as Record<string, unknown>;
            expect(seen).toMatchObject({ resolved: true, manifest: true, layer: true, rangeOffset: 1024, rangeSize: SIZE - 1024 });
            // What Deno pushed is there for another client (Node, here) under the tag, byte for byte.
            const repository = `${runtime}/boot-${strategy}`;
            const pulled = openRepository({ registry: registry.host, repository }, checker);
            const manifest = await pulled.resolve(strategy);
            expect(manifest.digest).toBe(seen["manifestDigest"]);
            const layer = { mediaType: "application/vnd.ironcore.image.rootfs", digest: seen["layerDigest"] as Digest, size: SIZE };
            expect(await sha256OfStream((await pulled.fetch(layer)).stream)).toEqual({ digest: layer.digest, size: SIZE });
            // The registry saw the upload strategy asked for, and a ranged read answered 206.
            const requests = registry.requests().filter((request) => request.uri.startsWith(`/v2/${repository}/`));
            const patches = requests.filter((request) => request.method === "PATCH" && request.status === 202).length;
            if (strategy === "chunked") expect(patches).toBeGreaterThanOrEqual(Math.ceil(SIZE / (3 * 1024 * 1024)));
            else expect(patches).toBe(0);
            expect(requests.some((request) => request.method === "GET" && request.uri.includes(`/blobs/${layer.digest}`) && request.status === 206)).toBe(true);
          }
        } finally {
          await closeRegistryConnections(checker);
        }
      });
    }
  }
});
