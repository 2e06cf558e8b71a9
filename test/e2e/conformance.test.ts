import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBytes, encodeManifest } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { DIGEST_TABLE, NAME_LENGTH_TABLE } from "../oci/fixtures/conformance.ts";
import { ociboot } from "./ociboot-binary.ts";

const EXIT = { ok: 0, usage: 2, notFound: 3, integrity: 5, unsupported: 6 } as const;

/** Writes a layout by hand from raw manifest bytes, so a test can say exactly what it holds. */
async function writeRawLayout(directory: string, blobs: ReadonlyArray<Uint8Array | string>, entries: readonly object[], layoutFile: string | undefined = '{"imageLayoutVersion":"1.0.0"}'): Promise<void> {
  await mkdir(join(directory, "blobs", "sha256"), { recursive: true });
  for (const bytes of blobs) {
    const { digest } = describeBytes("application/octet-stream", bytes);
    await writeFile(join(directory, "blobs", "sha256", digest.slice(7)), bytes);
  }
  await writeFile(join(directory, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: entries }));
  if (layoutFile !== undefined) await writeFile(join(directory, "oci-layout"), layoutFile);
}

describe("conformance tables through the built executable", () => {
  let work: string;
  let registry: RunningRegistry;
  let store: string;
  let imageDigest: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-conformance-"));
    registry = await startRegistry();
    store = join(work, "store");
    for (const name of ["k", "i", "r"]) await writeFile(join(work, name), `${name}`.repeat(1000));
    const built = await ociboot(["--store-path", store, "build", "--kernel-file", join(work, "k"), "--initramfs-file", join(work, "i"), "--rootfs-file", join(work, "r")]);
    expect(built.code, built.stderr).toBe(0);
    imageDigest = `sha256:${/Successfully built ([0-9a-f]{64})/.exec(built.stdout)![1]}`;
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it.each(NAME_LENGTH_TABLE)("tag %j: %s (the 255-character limit is the repository path's)", async (reference, outcome) => {
    const result = await ociboot(["--store-path", store, "tag", imageDigest, reference]);
    if (outcome === "accepted") {
      expect(result.code, result.stderr).toBe(EXIT.ok);
    } else {
      expect(result.code).toBe(EXIT.usage);
      expect(result.stderr).toContain("repository path is longer than 255 characters");
    }
  });

  it.each(DIGEST_TABLE)("fetch REF@%j: %s, and nothing is asked of the registry unless supported", async (digest, outcome) => {
    const before = registry.requests().filter((request) => request.uri.includes("/conformance/")).length;
    const result = await ociboot(["fetch", `${registry.host}/conformance/x@${digest}`, "-o", join(work, "never")]);
    const after = registry.requests().filter((request) => request.uri.includes("/conformance/")).length;
    if (outcome === "supported") {
      expect(result.code, result.stderr).toBe(EXIT.notFound);
      return;
    }
    expect(result.code, result.stderr).toBe(outcome === "unsupported" ? EXIT.unsupported : EXIT.usage);
    if (outcome === "unsupported") expect(result.stderr).toContain("only sha256 and sha512");
    expect(after).toBe(before);
  });

  it("refuses a manifest whose layer uses another digest algorithm as unsupported (6), not invalid (5)", async () => {
    const config = "{}";
    const configDescriptor = describeBytes("application/vnd.oci.image.config.v1+json", config);
    const manifest = encodeManifest({
      config: configDescriptor,
      layers: [{ mediaType: "application/vnd.ironcore.image.kernel", digest: `sha384:${"ab".repeat(48)}` as never, size: 3 }],
    });
    const directory = join(work, "sha384-layer");
    await writeRawLayout(directory, [config, manifest], [{ ...describeBytes("application/vnd.oci.image.manifest.v1+json", manifest), annotations: { "org.opencontainers.image.ref.name": "v1" } }]);
    const result = await ociboot(["fetch", `oci:${directory}:v1`, "-o", join(work, "sha384-out")]);
    expect(result.code, result.stderr).toBe(EXIT.unsupported);
    expect(result.stderr).toContain('algorithm "sha384" is not supported');
  });
});
