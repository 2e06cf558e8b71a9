import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeBytes, encodeManifest, ONMETAL_MEDIA_TYPES, onmetalConfigBytes } from "../harness/images.ts";
import { runInProcess } from "./cli-context.ts";

let work: string;
let files: { kernel: Buffer; initrd: Buffer; rootfs: Buffer };

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-cli-"));
  files = { kernel: randomBytes(300_000), initrd: randomBytes(200_000), rootfs: randomBytes(1_500_000) };
  await writeFile(join(work, "vmlinuz"), files.kernel);
  await writeFile(join(work, "initrd"), files.initrd);
  await writeFile(join(work, "rootfs.tar"), files.rootfs);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const COMMAND_LINE = "console=ttyS0 <quiet> & ro";

/** The manifest onmetal-image would build, encoded independently by the test harness. */
function expectedManifestDigest(): string {
  const config = describeBytes(ONMETAL_MEDIA_TYPES.config, onmetalConfigBytes(COMMAND_LINE));
  const layers = [
    describeBytes(ONMETAL_MEDIA_TYPES.rootfs, files.rootfs),
    describeBytes(ONMETAL_MEDIA_TYPES.initrd, files.initrd),
    describeBytes(ONMETAL_MEDIA_TYPES.kernel, files.kernel),
  ];
  const bytes = encodeManifest({ config, layers, mediaTypeField: false });
  return createHash("sha256").update(bytes).digest("hex");
}

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });
const BUILD = ["--store-path", "store", "build", "--rootfs-file", "rootfs.tar", "--initramfs-file", "initrd", "--kernel-file", "vmlinuz", "--command-line", COMMAND_LINE];

async function indexEntries(): Promise<Array<{ digest: string; annotations?: Record<string, string> }>> {
  return (JSON.parse(await readFile(join(work, "store", "index.json"), "utf8")) as { manifests: [] }).manifests;
}

describe("build, list, tag, inspect, delete, prune", () => {
  it("builds the manifest onmetal-image builds, byte for byte, and rebuilding adds no entry", async () => {
    const hex = expectedManifestDigest();
    const first = await cli(...BUILD);
    expect(first).toMatchObject({ code: 0, stdout: `Successfully built ${hex}\n` });
    const second = await cli(...BUILD);
    expect(second.stdout).toBe(`Successfully built ${hex}\n`);
    expect(await indexEntries()).toEqual([
      { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${hex}`, size: expect.any(Number) },
    ]);
    expect(await readFile(join(work, "store", "blobs", "sha256", createHash("sha256").update(files.kernel).digest("hex")))).toEqual(files.kernel);
  });

  it("builds with --tag, and the store path works after the command too", async () => {
    const hex = expectedManifestDigest();
    const result = await cli(...BUILD.slice(2), "--tag", "ghcr.io/user/project:1.0", "--store-path", "store");
    expect(result.stdout).toBe(`Successfully built ghcr.io/user/project:1.0 ${hex}\n`);
  });

  it("lists, tags by the 12-hex ID, inspects, deletes and prunes like onmetal-image", async () => {
    const hex = expectedManifestDigest();
    await cli(...BUILD);
    const id = hex.slice(0, 12);
    expect((await cli("--store-path", "store", "list")).stdout).toBe(`REPOSITORY  TAG         IMAGE ID\n<none>      <none>      ${id}\n`);

    const tagged = await cli("--store-path", "store", "tag", id, "127.0.0.1:5000/gardenlinux:today");
    expect(tagged.stdout).toBe(`Successfully tagged 127.0.0.1:5000/gardenlinux:today with sha256:${hex}\n`);
    expect((await cli("--store-path", "store", "tag", `sha256:${hex}`, "ghcr.io/u/p:1")).code).toBe(0);
    expect((await cli("--store-path", "store", "tag", hex, "ghcr.io/u/p:2")).code).toBe(0);
    expect((await cli("--store-path", "store", "tag", "ghcr.io/u/p:2", "ghcr.io/u/p")).stdout).toContain("ghcr.io/u/p:latest");

    // The untagged entry build made is the same image as the tagged ones: shown only with --all.
    const listed = (await cli("--store-path", "store", "list")).stdout;
    expect(listed).toBe(
      [
        "REPOSITORY                 TAG         IMAGE ID",
        `127.0.0.1:5000/gardenlinux today       ${id}`,
        `ghcr.io/u/p                1           ${id}`,
        `ghcr.io/u/p                2           ${id}`,
        `ghcr.io/u/p                latest      ${id}`,
        "",
      ].join("\n"),
    );
    expect((await cli("--store-path", "store", "list", "--all")).stdout.split("\n").slice(0, 3)).toEqual([
      "REPOSITORY                 TAG         IMAGE ID     TYPE",
      `<none>                     <none>      ${id}${" "}duplicate`,
      `127.0.0.1:5000/gardenlinux today       ${id}${" "}image`,
    ]);
    const json = JSON.parse((await cli("--store-path", "store", "list", "--json")).stdout) as Array<Record<string, unknown>>;
    expect(json[0]).toEqual({
      repository: "127.0.0.1:5000/gardenlinux",
      tag: "today",
      reference: "127.0.0.1:5000/gardenlinux:today",
      id,
      digest: `sha256:${hex}`,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      size: expect.any(Number),
      type: "image",
    });
    const all = JSON.parse((await cli("--store-path", "store", "list", "--json", "--all")).stdout) as Array<Record<string, unknown>>;
    expect(all[0]).toMatchObject({ repository: null, tag: null, reference: null, type: "duplicate" });

    const inspected = await cli("--store-path", "store", "inspect", "127.0.0.1:5000/gardenlinux:today");
    const shown = JSON.parse(inspected.stdout) as { descriptor: { digest: string }; manifest: { layers: unknown[] }; config: unknown };
    expect(shown.descriptor.digest).toBe(`sha256:${hex}`);
    expect(shown.manifest.layers).toHaveLength(3);
    expect(shown.config).toEqual({ commandLine: COMMAND_LINE });
    // Go's encoder escapes HTML characters and indents by two spaces.
    expect(inspected.stdout).toContain('"commandLine": "console=ttyS0 \\u003cquiet\\u003e \\u0026 ro"');
    expect(inspected.stdout.endsWith("}\n")).toBe(true);

    expect((await cli("--store-path", "store", "delete", "ghcr.io/u/p:1")).stdout).toBe("Successfully deleted ghcr.io/u/p:1\n");
    expect((await indexEntries()).some((entry) => entry.annotations?.["org.opencontainers.image.ref.name"] === "ghcr.io/u/p:1")).toBe(false);

    // Nothing unreferenced yet; then the ID removes every entry and prune frees all five blobs.
    expect((await cli("--store-path", "store", "prune", "--grace", "0")).stdout).toBe("Removed 0 blobs (0 B)\n");
    expect((await cli("--store-path", "store", "delete", id)).code).toBe(0);
    expect(await indexEntries()).toEqual([]);
    expect((await cli("--store-path", "store", "prune", "--grace", "0")).stdout).toMatch(/^Removed 5 blobs \(/);
    expect(await readdir(join(work, "store", "blobs", "sha256"))).toEqual([]);
  });

  it("keeps young unreferenced blobs in prune's grace period", async () => {
    await cli(...BUILD);
    const hex = expectedManifestDigest();
    await cli("--store-path", "store", "delete", hex);
    expect((await cli("--store-path", "store", "prune")).stdout).toBe("Removed 0 blobs (0 B); kept 5 unreferenced blobs younger than 600s\n");
  });

  it("fails with a specific error for unknown, ambiguous and invalid names", async () => {
    await mkdir(join(work, "store"));
    const entry = (hex: string) => ({ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${hex}`, size: 2 });
    await writeFile(
      join(work, "store", "index.json"),
      JSON.stringify({ schemaVersion: 2, manifests: [entry(`abcd${"1".repeat(60)}`), entry(`abcd${"2".repeat(60)}`)] }),
    );
    await writeFile(join(work, "store", "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
    const ambiguous = await cli("--store-path", "store", "tag", "abcd", "x.io/a:b");
    expect(ambiguous.error).toMatchObject({ code: "AMBIGUOUS" });
    expect(ambiguous.code).toBe(2);
    expect((await cli("--store-path", "store", "inspect", "nothing.io/here:1")).error).toMatchObject({ code: "NOT_FOUND" });
    expect((await cli("--store-path", "store", "tag", "abcd1111", "Not A Reference")).error).toMatchObject({ code: "INVALID_REFERENCE" });
    expect((await cli("--store-path", "store", "build", "--kernel-file", "vmlinuz")).error).toMatchObject({ code: "USAGE" });
  });

  it("builds a multi-architecture ironcore index tagged T with per-arch tags T-<arch>", async () => {
    const spec = (arch: string) => `arch=${arch},kernel=vmlinuz,initramfs=initrd`;
    const built = await cli("--store-path", "store", "build", "--format", "ironcore", "--config", spec("amd64"), "--config", spec("arm64"), "--tag", "ghcr.io/me/boot:1");
    expect(built.stdout).toMatch(/^Successfully built ghcr.io\/me\/boot:1 [0-9a-f]{64}\n$/);
    const names = (await indexEntries()).map((entry) => entry.annotations?.["org.opencontainers.image.ref.name"]).filter(Boolean);
    expect(names.sort()).toEqual(["ghcr.io/me/boot:1", "ghcr.io/me/boot:1-amd64", "ghcr.io/me/boot:1-arm64"]);
    const inspected = JSON.parse((await cli("--store-path", "store", "inspect", "ghcr.io/me/boot:1")).stdout) as {
      index: { manifests: Array<{ platform: unknown }> };
      manifests: Array<{ manifest: { layers: Array<{ mediaType: string }> } }>;
    };
    expect(inspected.index.manifests.map((entry) => entry.platform)).toEqual([
      { architecture: "amd64", os: "linux" },
      { architecture: "arm64", os: "linux" },
    ]);
    expect(inspected.manifests[0]?.manifest.layers.map((layer) => layer.mediaType)).toEqual([
      "application/vnd.ironcore.image.initramfs",
      "application/vnd.ironcore.image.kernel",
    ]);
  });
});
