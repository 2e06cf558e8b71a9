import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe as group, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { MediaType } from "../../src/oci/mediatypes.ts";
import { closeRegistryConnections, fallbackTag, openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { run } from "../harness/commands.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { bytesStream, describe, readAll } from "./helpers.ts";

let registry: RunningRegistry;
let work: string;
let options: RegistryOptions;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-referrers-"));
  registry = await startRegistry({ auth: "token" });
  options = { env: {}, homeDir: work, username: registry.credentials!.username, password: registry.credentials!.password };
});

afterAll(async () => {
  await closeRegistryConnections(options);
  await registry.stop();
  await rm(work, { recursive: true, force: true });
});

async function pushImage(repositoryName: string, layerText: string, extra: Record<string, unknown> = {}): Promise<{ manifest: Descriptor; layer: Descriptor }> {
  const repository = openRepository({ registry: registry.host, repository: repositoryName }, options);
  const config = Buffer.from("{}");
  const configDescriptor = describe(MediaType.ociEmpty, config);
  const layerBytes = Buffer.from(layerText);
  const layer = describe("text/plain", layerBytes);
  const manifestBytes = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers: [layer], ...extra }),
  );
  const manifest = describe(MediaType.ociManifest, manifestBytes);
  await repository.push(configDescriptor, bytesStream(config));
  await repository.push(layer, bytesStream(layerBytes));
  await repository.push(manifest, bytesStream(manifestBytes));
  return { manifest, layer };
}

group("referrers on a registry without the referrers API (distribution 2.8)", () => {
  it("attaches through the sha256-<hex> fallback tag and lists, filtered by artifact type", async () => {
    const repository = openRepository({ registry: registry.host, repository: "boot/image" }, options);
    const { manifest: subject } = await pushImage("boot/image", "kernel");
    await repository.tag(subject, "1.0");
    expect(await repository.referrers(subject)).toEqual([]);

    const osRelease = await pushImage("boot/image", "ID=gardenlinux", {
      artifactType: "build/os-release",
      subject,
      annotations: { "org.opencontainers.image.title": "os-release" },
    });
    const log = await pushImage("boot/image", "build log", { artifactType: "build/log", subject });
    // Pushing the same referrer again adds no duplicate.
    await pushImage("boot/image", "build log", { artifactType: "build/log", subject });

    const all = await repository.referrers(subject);
    expect(all.map((descriptor) => descriptor.digest).sort()).toEqual([osRelease.manifest.digest, log.manifest.digest].sort());
    expect(all.find((descriptor) => descriptor.digest === osRelease.manifest.digest)).toMatchObject({
      mediaType: MediaType.ociManifest,
      artifactType: "build/os-release",
      annotations: { "org.opencontainers.image.title": "os-release" },
    });
    expect((await repository.referrers(subject, "build/log")).map((descriptor) => descriptor.digest)).toEqual([log.manifest.digest]);

    // The fallback index is an ordinary tag other tools (oras, skopeo) read too.
    const tags: string[] = [];
    for await (const tag of repository.tags()) tags.push(tag);
    expect(tags.sort()).toEqual(["1.0", fallbackTag(subject.digest)].sort());
    const inspected = await run("skopeo", [
      "inspect", "--raw", "--tls-verify=false", "--creds", `${registry.credentials!.username}:${registry.credentials!.password}`,
      `docker://${registry.host}/boot/image:${fallbackTag(subject.digest)}`,
    ]);
    expect(JSON.parse(inspected.stdout)).toMatchObject({ mediaType: MediaType.ociIndex });
  });
});

group("cross-repository mount", () => {
  it("mounts a blob from another repository instead of uploading it", async () => {
    const { layer } = await pushImage("boot/source", "a layer worth mounting");
    const target = openRepository({ registry: registry.host, repository: "boot/target" }, options);
    expect(await target.exists(layer)).toBe(false);
    const before = registry.requests().length;
    expect(await target.mount(layer, "boot/source")).toBe(true);
    expect(await target.exists(layer)).toBe(true);
    expect(await readAll((await target.fetch(layer)).stream)).toEqual(Buffer.from("a layer worth mounting"));
    const uploads = registry.requests().slice(before).filter((request) => request.method === "PUT" || request.method === "PATCH");
    expect(uploads).toEqual([]);
  });

  it("uploads when the blob is not in the source repository, through push with mountFrom", async () => {
    const target = openRepository({ registry: registry.host, repository: "boot/target2" }, options);
    const bytes = Buffer.from("not anywhere yet");
    const blob = describe("text/plain", bytes);
    await target.push(blob, bytesStream(bytes), { mountFrom: "boot/source" });
    expect(await readAll((await target.fetch(blob)).stream)).toEqual(bytes);
  });

  it("says false when the registry will not mount", async () => {
    const target = openRepository({ registry: registry.host, repository: "boot/target3" }, options);
    const missing = describe("text/plain", Buffer.from("never pushed"));
    expect(await target.mount(missing, "boot/source")).toBe(false);
  });
});
