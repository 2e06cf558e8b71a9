import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOk } from "../harness/commands.ts";
import { writeDockerConfig } from "../harness/docker-config.ts";
import { makeBootImage, publishWithSkopeo, skopeoRegistryFlags, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot, ocibootUnderDeno } from "./ociboot-binary.ts";

/** The build extras the Garden Linux seed attaches (docs/formats.md#referrers), with their artifact types. */
const EXTRAS = [
  { name: "metal.os-release", type: "build/os-release", text: 'ID=gardenlinux\nVERSION_ID="1592.1"\n' },
  { name: "metal.manifest", type: "build/manifest", text: "linux-image-amd64 6.1.0\nsystemd 252\n".repeat(200) },
  { name: "metal.log", type: "build/log", text: "I: building\n".repeat(5000) },
] as const;

interface DiscoverJson {
  reference: string;
  subject: { digest: string; mediaType: string; size: number };
  manifests: Array<{ digest: string; artifactType: string; layers: Array<{ digest: string; size: number; annotations: Record<string, string> }> }>;
}

const sha256 = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-e2e-referrers-"));
  for (const extra of EXTRAS) await writeFile(join(work, extra.name), extra.text);
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

async function publishBootImage(registry: RunningRegistry, repository: string): Promise<{ reference: string; digest: string }> {
  const layout = join(work, `layout-${registry.host.replace(/\W/g, "-")}-${repository.replace(/\W/g, "-")}`);
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { bytes: repository }, commandLine: "quiet" })],
  });
  const { reference } = await publishWithSkopeo(layout, "v1", registry, repository);
  return { reference, digest: written.manifests[0]!.descriptor.digest };
}

async function discoverJson(reference: string, extra: string[] = [], env: Record<string, string> = {}): Promise<DiscoverJson> {
  const result = await ociboot(["discover", reference, "--json", ...extra], { env });
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as DiscoverJson;
}

async function attach(reference: string, name: string, type: string, env: Record<string, string> = {}): Promise<string> {
  const result = await ociboot(["attach", reference, join(work, name), "--artifact-type", type], { env });
  expect(result.code, result.stderr).toBe(0);
  const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(result.stdout)?.[1];
  expect(digest, result.stdout).toBeDefined();
  return digest as string;
}

describe("attach and discover on a registry without the referrers API (distribution 2.8)", () => {
  let registry: RunningRegistry;
  let image: { reference: string; digest: string };
  const artifacts = new Map<string, string>();

  beforeAll(async () => {
    registry = await startRegistry();
    image = await publishBootImage(registry, "os/metal");
    for (const extra of EXTRAS) artifacts.set(extra.name, await attach(image.reference, extra.name, extra.type));
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("lists the three build files as a tree, grouped by artifact type with their titles", async () => {
    const result = await ociboot(["discover", image.reference]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        `${registry.host}/os/metal@${image.digest}`,
        "├── build/os-release",
        `│   └── ${artifacts.get("metal.os-release")}  metal.os-release`,
        "├── build/manifest",
        `│   └── ${artifacts.get("metal.manifest")}  metal.manifest`,
        "└── build/log",
        `    └── ${artifacts.get("metal.log")}  metal.log`,
        "",
      ].join("\n"),
    );
  });

  it("filters by artifact type; the attached bytes, downloaded by digest, are the originals", async () => {
    const listing = await discoverJson(image.reference, ["--artifact-type", "build/log"]);
    expect(listing.subject.digest).toBe(image.digest);
    expect(listing.manifests.map((manifest) => manifest.digest)).toEqual([artifacts.get("metal.log")]);
    for (const extra of EXTRAS) {
      const [manifest] = (await discoverJson(image.reference, ["--artifact-type", extra.type])).manifests;
      const layer = manifest!.layers[0]!;
      expect(layer.annotations["org.opencontainers.image.title"]).toBe(extra.name);
      expect(layer.digest).toBe(sha256(extra.text));
      const response = await fetch(`${registry.url}/v2/os/metal/blobs/${layer.digest}`);
      expect(await response.text()).toBe(extra.text);
    }
  });

  it("keeps the referrers in the sha256-<hex> fallback tag, an OCI index skopeo reads", async () => {
    const tag = image.digest.replace(":", "-");
    const inspected = await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", `docker://${registry.host}/os/metal:${tag}`]);
    const index = JSON.parse(inspected.stdout) as { mediaType: string; manifests: Array<{ digest: string; artifactType: string }> };
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((entry) => [entry.digest, entry.artifactType])).toEqual(EXTRAS.map((extra) => [artifacts.get(extra.name), extra.type]));
  });

  it("keeps both artifacts when the same file is attached twice, and all of four concurrent attaches", async () => {
    const other = await publishBootImage(registry, "os/twice");
    const first = await attach(other.reference, "metal.log", "build/log", { SOURCE_DATE_EPOCH: "1" });
    const second = await attach(other.reference, "metal.log", "build/log", { SOURCE_DATE_EPOCH: "2" });
    expect(second).not.toBe(first);
    const concurrent = await Promise.all(["3", "4", "5", "6"].map((epoch) => attach(other.reference, "metal.log", "build/log", { SOURCE_DATE_EPOCH: epoch })));
    const listed = (await discoverJson(other.reference)).manifests.map((manifest) => manifest.digest);
    expect(listed.sort()).toEqual([first, second, ...concurrent].sort());
  });

  it("gives the same artifact digest for the same file and SOURCE_DATE_EPOCH, and lists it once", async () => {
    const other = await publishBootImage(registry, "os/reproducible");
    const first = await attach(other.reference, "metal.os-release", "build/os-release", { SOURCE_DATE_EPOCH: "1700000000" });
    const again = await attach(other.reference, "metal.os-release", "build/os-release", { SOURCE_DATE_EPOCH: "1700000000" });
    expect(again).toBe(first);
    expect((await discoverJson(other.reference)).manifests.map((manifest) => manifest.digest)).toEqual([first]);
  });

  it("prints JSON for attach, and says what is wrong with bad input", async () => {
    const result = await ociboot(["attach", image.reference, join(work, "metal.log"), "--artifact-type", "build/log", "-a", "com.example=yes", "--no-created", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const attached = JSON.parse(result.stdout) as { subject: { digest: string }; artifactType: string; annotations: Record<string, string>; layers: unknown[] };
    expect(attached).toMatchObject({ subject: { digest: image.digest }, artifactType: "build/log", annotations: { "com.example": "yes" } });
    expect(attached.layers).toHaveLength(1);

    expect((await ociboot(["attach", image.reference, join(work, "metal.log")])).code).toBe(2);
    expect((await ociboot(["attach", image.reference, join(work, "nope"), "--artifact-type", "build/log"])).code).toBe(3);
    expect((await ociboot(["attach", `${registry.host}/os/none:v1`, join(work, "metal.log"), "--artifact-type", "build/log"])).code).toBe(3);
    expect((await ociboot(["discover", `${registry.host}/os/none:v1`])).code).toBe(3);
  });
});

describe("attach and discover with bearer tokens (credentials from DOCKER_CONFIG)", () => {
  let registry: RunningRegistry;
  let dockerConfig: string;

  beforeAll(async () => {
    registry = await startRegistry({ auth: "token" });
    dockerConfig = join(work, "docker-token");
    await writeDockerConfig(dockerConfig, [registry]);
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("attaches and lists with the pull,push token, and refuses without credentials", async () => {
    const image = await publishBootImage(registry, "private/os");
    const env = { DOCKER_CONFIG: dockerConfig };
    const digest = await attach(image.reference, "metal.os-release", "build/os-release", env);
    const listing = await discoverJson(image.reference, [], env);
    expect(listing.manifests.map((manifest) => [manifest.digest, manifest.artifactType])).toEqual([[digest, "build/os-release"]]);
    const inspected = await runOk("skopeo", ["inspect", "--raw", ...skopeoRegistryFlags("src", registry).map((flag) => flag.replace("--src-", "--")), `docker://${registry.host}/private/os:${image.digest.replace(":", "-")}`]);
    expect((JSON.parse(inspected.stdout) as { manifests: Array<{ digest: string }> }).manifests.map((entry) => entry.digest)).toEqual([digest]);
    expect((await ociboot(["discover", image.reference])).code).toBe(4);
    expect((await ociboot(["attach", image.reference, join(work, "metal.log"), "--artifact-type", "build/log"])).code).toBe(4);
  });
});

describe("attach and discover in a local store (oci:DIR:REF)", () => {
  let registry: RunningRegistry;

  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it("attaches the build files as untagged entries, lists them, and push sends the image alone", async () => {
    const store = join(work, "onmetal");
    const reference = `${registry.host}/os/local:v1`;
    for (const name of ["kernel", "initrd", "rootfs"]) await writeFile(join(work, name), `${name} of the local image`);
    const built = await ociboot(["--store-path", store, "build", "--kernel-file", join(work, "kernel"), "--initramfs-file", join(work, "initrd"), "--rootfs-file", join(work, "rootfs"), "--tag", reference]);
    expect(built.code, built.stderr).toBe(0);
    const subject = `sha256:${built.stdout.trim().split(" ").at(-1)}`;

    const digests: string[] = [];
    for (const extra of EXTRAS) digests.push(await attach(`oci:${store}:${reference}`, extra.name, extra.type));
    const tree = await ociboot(["discover", `oci:${store}:${reference}`]);
    expect(tree.stdout.split("\n")[0]).toBe(`oci:${store}:${subject}`);
    expect(tree.stdout).toContain(`└── ${digests[2]}  metal.log`);
    const listing = await discoverJson(`oci:${store}:${subject}`, ["--artifact-type", "build/manifest"]);
    expect(listing.manifests.map((manifest) => manifest.digest)).toEqual([digests[1]]);

    const index = JSON.parse(await readFile(join(store, "index.json"), "utf8")) as { manifests: Array<{ digest: string; artifactType?: string; annotations?: Record<string, string> }> };
    const entries = index.manifests.filter((entry) => digests.includes(entry.digest));
    expect(entries.map((entry) => entry.artifactType)).toEqual(EXTRAS.map((extra) => extra.type));
    expect(entries.every((entry) => entry.annotations?.["org.opencontainers.image.ref.name"] === undefined)).toBe(true);

    // push copies what the image reaches (config and layers), not what refers to it: the artifacts stay local.
    const pushed = await ociboot(["--store-path", store, "push", reference]);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await discoverJson(reference)).manifests).toEqual([]);
  });

  it("lists the referrers an archive of the store carries, and runs the same under Deno", async () => {
    const store = join(work, "onmetal-deno");
    const reference = "example.com/os/deno:v1";
    const built = await ociboot(["--store-path", store, "build", "--kernel-file", join(work, "metal.log"), "--initramfs-file", join(work, "metal.log"), "--rootfs-file", join(work, "metal.log"), "--tag", reference]);
    expect(built.code, built.stderr).toBe(0);
    const underDeno = await ocibootUnderDeno(["attach", `oci:${store}:${reference}`, join(work, "metal.os-release"), "--artifact-type", "build/os-release"]);
    expect(underDeno.code, underDeno.stderr).toBe(0);
    const digest = /^Digest: (sha256:[0-9a-f]{64})$/m.exec(underDeno.stdout)?.[1];
    const listed = await ocibootUnderDeno(["discover", `oci:${store}:${reference}`, "--json"]);
    expect((JSON.parse(listed.stdout) as DiscoverJson).manifests.map((manifest) => manifest.digest)).toEqual([digest]);

    const archive = join(work, "onmetal-deno.tar");
    await runOk("tar", ["--create", "--file", archive, "--exclude=./.ociboot", "-C", store, "."]);
    const fromArchive = await discoverJson(`oci-archive:${archive}:${reference}`);
    expect(fromArchive.manifests.map((manifest) => [manifest.digest, manifest.layers[0]?.annotations["org.opencontainers.image.title"]])).toEqual([[digest, "metal.os-release"]]);
  });

  it("refuses to attach to an archive, which is read-only", async () => {
    const result = await ociboot(["attach", `oci-archive:${join(work, "none.tar")}`, join(work, "metal.log"), "--artifact-type", "build/log"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("Cannot attach to");
  });
});
