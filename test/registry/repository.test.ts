import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe as group, expect, it } from "vitest";
import { isOcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { fetchWithSkopeo, randomBytesFile, type RandomFile } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { bytesStream, describe, fileStream, readAll, sha256OfStream } from "./helpers.ts";

const LAYER_SIZE = 5 * 1024 * 1024 + 12_345;

let work: string;
let layer: RandomFile;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-registry-client-"));
  layer = await randomBytesFile(join(work, "rootfs"), LAYER_SIZE);
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const VARIANTS: { name: string; options: Parameters<typeof startRegistry>[0] }[] = [
  { name: "anonymous", options: {} },
  { name: "basic", options: { auth: "basic" } },
  { name: "bearer token", options: { auth: "token" } },
  { name: "TLS", options: { tls: true } },
  { name: "TLS with bearer token", options: { tls: true, auth: "token" } },
];

for (const variant of VARIANTS) {
  group(`registry client against a real registry (${variant.name})`, () => {
    let registry: RunningRegistry;
    let options: RegistryOptions;

    beforeAll(async () => {
      registry = await startRegistry(variant.options);
      options = { env: {}, homeDir: work, retry: { attempts: 2, baseDelayMs: 1 } };
      if (registry.caFile !== undefined) options.caFile = registry.caFile;
      if (registry.credentials !== undefined) {
        options.username = registry.credentials.username;
        options.password = registry.credentials.password;
      }
    });

    afterAll(async () => {
      await closeRegistryConnections(options);
      await registry.stop();
    });

    for (const strategy of ["monolithic", "chunked"] as const) {
      it(`pushes and pulls a manifest and a multi-megabyte blob (${strategy} upload)`, async () => {
        const pushOptions: RegistryOptions =
          strategy === "chunked" ? { ...options, upload: { monolithicLimit: 1024 * 1024, chunkSize: 2 * 1024 * 1024 } } : options;
        const repository = openRepository({ registry: registry.host, repository: `boot/${strategy}` }, pushOptions);
        const config = new TextEncoder().encode(`{"commandLine":"console=ttyS0 ${strategy}"}`);
        const configDescriptor = describe("application/vnd.ironcore.image.config.v1+json", config);
        const layerDescriptor: Descriptor = { mediaType: "application/vnd.ironcore.image.rootfs", digest: layer.digest, size: layer.size };
        const manifest = new TextEncoder().encode(
          JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers: [layerDescriptor] }),
        );
        const manifestDescriptor = describe(MediaType.ociManifest, manifest);

        await repository.push(configDescriptor, bytesStream(config));
        const before = registry.requests().length;
        await repository.push(layerDescriptor, fileStream(layer.path));
        await registry.waitForLog(/"PUT \/v2\/boot\/\w+\/blobs\/uploads\/[^"]*digest=sha256[^"]*" 201/);
        const uploadRequests = registry.requests().slice(before).filter((request) => request.uri.includes("/blobs/uploads/"));
        const patches = uploadRequests.filter((request) => request.method === "PATCH" && request.status === 202);
        // 5 MiB in 2 MiB chunks: three PATCHes, then the closing PUT; monolithic: one PUT.
        expect(patches.length).toBe(strategy === "chunked" ? 3 : 0);
        await repository.push(manifestDescriptor, bytesStream(manifest));
        await repository.tag(manifestDescriptor, "1.0");

        // A second repository object: nothing cached, everything from the registry.
        const reader = openRepository({ registry: registry.host, repository: `boot/${strategy}` }, options);
        expect(await reader.resolve("1.0")).toEqual(manifestDescriptor);
        expect(await readAll((await reader.fetch(manifestDescriptor)).stream)).toEqual(Buffer.from(manifest));
        expect(await readAll((await reader.fetch(configDescriptor)).stream)).toEqual(Buffer.from(config));
        const fetched = await reader.fetch(layerDescriptor);
        expect(fetched.offset).toBe(0);
        expect(await sha256OfStream(fetched.stream)).toEqual({ digest: layer.digest, size: layer.size });
        expect(await reader.exists(layerDescriptor)).toBe(true);
        expect(await reader.exists(manifestDescriptor)).toBe(true);
        expect(await reader.exists({ ...layerDescriptor, digest: configDescriptor.digest.replace(/.$/, "0") as Descriptor["digest"] })).toBe(false);
        const tags: string[] = [];
        for await (const tag of reader.tags()) tags.push(tag);
        expect(tags).toEqual(["1.0"]);

        // Pushing again skips existing blobs (HEAD) and succeeds.
        await repository.push(layerDescriptor, fileStream(layer.path));

        // skopeo reads what we wrote: the registry accepted it as a proper image.
        if (strategy === "monolithic") {
          await fetchWithSkopeo(registry, `boot/${strategy}`, "1.0", join(work, `skopeo-${variant.name.replace(/\W/g, "-")}`));
        }
      });
    }

    it("resumes a blob download from an offset with an exact Content-Range", async () => {
      const repository = openRepository({ registry: registry.host, repository: "boot/range" }, options);
      const layerDescriptor: Descriptor = { mediaType: "application/vnd.ironcore.image.rootfs", digest: layer.digest, size: layer.size };
      await repository.push(layerDescriptor, fileStream(layer.path));
      const offset = 3 * 1024 * 1024 + 7;
      const fetched = await repository.fetch(layerDescriptor, { offset });
      expect(fetched.offset).toBe(offset);
      const rest = await readAll(fetched.stream);
      expect(rest.byteLength).toBe(layer.size - offset);
      const whole = await readAll((await repository.fetch(layerDescriptor)).stream);
      expect(rest.equals(whole.subarray(offset))).toBe(true);
    });

    it("reports a missing manifest as NOT_FOUND with the registry's error code", async () => {
      const repository = openRepository({ registry: registry.host, repository: "boot/missing" }, options);
      const error = await repository.resolve("nope").catch((caught: unknown) => caught);
      expect(isOcibootError(error, "NOT_FOUND")).toBe(true);
      expect((error as Error).message).toMatch(/^Cannot fetch manifest .*boot\/missing:nope: registry answered 404 (MANIFEST_UNKNOWN|NAME_UNKNOWN)/);
    });

    if (variant.options?.tls === true) {
      it("refuses an unknown CA, and accepts it only with --insecure and a warning", async () => {
        const untrusting: RegistryOptions = { env: {}, homeDir: work, retry: { attempts: 1 } };
        if (options.username !== undefined && options.password !== undefined) {
          untrusting.username = options.username;
          untrusting.password = options.password;
        }
        const error = await openRepository({ registry: registry.host, repository: "boot/monolithic" }, untrusting)
          .resolve("1.0")
          .catch((caught: unknown) => caught);
        expect(isOcibootError(error, "TLS")).toBe(true);
        const warnings: string[] = [];
        const insecure: RegistryOptions = { ...untrusting, insecure: true, warn: (line) => warnings.push(line) };
        const descriptor = await openRepository({ registry: registry.host, repository: "boot/monolithic" }, insecure).resolve("1.0");
        expect(descriptor.mediaType).toBe(MediaType.ociManifest);
        expect(warnings).toHaveLength(1);
        expect(warnings[0]).toMatch(/verification is disabled/);
        await closeRegistryConnections(insecure);
      });
    }

    if (variant.options?.auth !== undefined) {
      it("refuses anonymous access with UNAUTHORIZED and a hint", async () => {
        const anonymous: RegistryOptions = { env: {}, homeDir: work, retry: { attempts: 1 } };
        if (registry.caFile !== undefined) anonymous.caFile = registry.caFile;
        const repository = openRepository({ registry: registry.host, repository: "boot/monolithic" }, anonymous);
        const error = await repository.resolve("1.0").catch((caught: unknown) => caught);
        expect(isOcibootError(error, "UNAUTHORIZED")).toBe(true);
        expect((error as Error).message).toMatch(/no credentials found for 127\.0\.0\.1/);
      });
    }
  });
}
