import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";

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
        expect(result.stderr + result.stdout).not.toMatch(/error/i);
        const output = JSON.parse(result.stdout.trim().split("\n").at(-1) ?? "{}") as Record<string, unknown>;
        expect(output["runtime"]).toBe(runtime);
        for (const strategy of ["monolithic", "chunked"]) {
          expect(output[strategy]).toEqual({ resolved: true, manifest: true, layer: true, rangeOffset: 1024, rangeSize: SIZE - 1024 });
        }
      });
    }
  }
});
