/**
 * Push and pull of a multi-megabyte blob with streams, run under Deno by deno.test.ts (and
 * runnable under Node): proves the registry client's upload strategies work on both runtimes.
 *
 * Usage: deno run -A test/registry/deno-push-pull.ts '{"registry":"127.0.0.1:5000","repository":"x/y",...}'
 * Prints one JSON line with what was checked.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { closeRegistryConnections, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { randomBytesFile } from "../harness/images.ts";
import { bytesStream, describe, fileStream, readAll, sha256OfStream } from "./helpers.ts";

interface Arguments {
  registry: string;
  repository: string;
  size: number;
  caFile?: string;
  username?: string;
  password?: string;
}

const input = JSON.parse(process.argv[2] ?? "{}") as Arguments;
const work = await mkdtemp(join(tmpdir(), "ociboot-deno-push-pull-"));
const results: Record<string, unknown> = { runtime: typeof (globalThis as { Deno?: unknown }).Deno === "object" ? "deno" : "node" };
try {
  const layer = await randomBytesFile(join(work, "rootfs"), input.size);
  for (const strategy of ["monolithic", "chunked"] as const) {
    const options: RegistryOptions = { env: {}, homeDir: work };
    if (input.caFile !== undefined) options.caFile = input.caFile;
    if (input.username !== undefined && input.password !== undefined) {
      options.username = input.username;
      options.password = input.password;
    }
    if (strategy === "chunked") options.upload = { monolithicLimit: 1024 * 1024, chunkSize: 3 * 1024 * 1024 };
    const repository = openRepository({ registry: input.registry, repository: `${input.repository}-${strategy}` }, options);
    const config = new TextEncoder().encode(`{"runtime":"${String(results["runtime"])}","strategy":"${strategy}"}`);
    const configDescriptor = describe("application/vnd.ironcore.image.config.v1+json", config);
    const layerDescriptor: Descriptor = { mediaType: "application/vnd.ironcore.image.rootfs", digest: layer.digest, size: layer.size };
    const manifest = new TextEncoder().encode(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers: [layerDescriptor] }),
    );
    const manifestDescriptor = describe(MediaType.ociManifest, manifest);
    await repository.push(configDescriptor, bytesStream(config));
    await repository.push(layerDescriptor, fileStream(layer.path));
    await repository.push(manifestDescriptor, bytesStream(manifest));
    await repository.tag(manifestDescriptor, strategy);

    const reader = openRepository({ registry: input.registry, repository: `${input.repository}-${strategy}` }, { ...options });
    const resolved = await reader.resolve(strategy);
    const pulledManifest = await readAll((await reader.fetch(resolved)).stream);
    const pulledLayer = await sha256OfStream((await reader.fetch(layerDescriptor)).stream);
    const opened = await reader.openBlob(layerDescriptor, { offset: 1024 });
    const rest = await sha256OfStream(opened.body);
    results[strategy] = {
      resolved: resolved.digest === manifestDescriptor.digest,
      manifest: Buffer.from(pulledManifest).equals(Buffer.from(manifest)),
      layer: pulledLayer.digest === layer.digest && pulledLayer.size === layer.size,
      rangeOffset: opened.offset,
      rangeSize: rest.size,
      manifestDigest: manifestDescriptor.digest,
      layerDigest: layer.digest,
    };
    await closeRegistryConnections(options);
  }
  console.log(JSON.stringify(results));
} finally {
  await rm(work, { recursive: true, force: true });
}
