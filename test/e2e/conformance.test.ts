import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import { describeBytes, encodeManifest, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { runOk } from "../harness/commands.ts";
import { DIGEST_TABLE, EMPTY_IMAGE_TABLE, LAYOUT_FILE_TABLE, NAME_LENGTH_TABLE } from "../oci/fixtures/conformance.ts";
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

  it.each(LAYOUT_FILE_TABLE)("oci-layout %s: %s for verify and fetch of oci:, verify of oci-archive: and import", async (label, content, outcome) => {
    const directory = join(work, `layout-${label.replace(/\W+/g, "-")}`);
    await cp(store, directory, { recursive: true });
    if (content === undefined) await rm(join(directory, "oci-layout"));
    else await writeFile(join(directory, "oci-layout"), content);
    const archive = `${directory}.tar`;
    await runOk("tar", ["-cf", archive, "-C", directory, ...(await readdir(directory)).filter((name) => name !== ".ociboot")]);
    const expected = { readable: EXIT.ok, invalid: EXIT.integrity, unsupported: EXIT.unsupported }[outcome];
    const results = [
      await ociboot(["verify", `oci:${directory}`]),
      await ociboot(["fetch", `oci:${directory}`, "-o", `${directory}-out`]),
      await ociboot(["verify", `oci-archive:${archive}`]),
      await ociboot(["--store-path", `${directory}-imported`, "import", archive]),
    ];
    for (const result of results) {
      expect(result.code, result.stderr).toBe(expected);
      if (outcome !== "readable") expect(result.stderr).toMatch(/oci-layout/);
    }
    if (outcome === "readable") expect(results[0]!.stdout).toMatch(/All \d+ items verified/);
  });

  it("never reports success with nothing to check: a missing or empty directory, an empty store or archive", async () => {
    const empty = join(work, "empty-dir");
    await mkdir(empty, { recursive: true });
    const emptyStore = join(work, "empty-store");
    await writeRawLayout(emptyStore, [], []);
    await runOk("tar", ["-cf", `${empty}.tar`, "-C", empty, "."]);
    await runOk("tar", ["-cf", `${emptyStore}.tar`, "-C", emptyStore, "."]);
    const cases: Array<[string[], RegExp]> = [
      [["verify", `oci:${join(work, "nonexistent")}`], /no such directory/],
      [["verify", `oci:${empty}`], /not an OCI image layout/],
      [["verify", `oci:${emptyStore}`], /lists no image/],
      [["verify", `oci-archive:${empty}.tar`], /holds no OCI image layout/],
      [["verify", `oci-archive:${emptyStore}.tar`], /lists no image/],
      [["verify", `oci-archive:${join(work, "nonexistent.tar")}`], /no such file/],
      [["fetch", `oci:${empty}`, "-o", join(work, "never")], /not an OCI image layout/],
      [["--store-path", join(work, "never-store"), "import", `${emptyStore}.tar`], /lists no image/],
    ];
    for (const [args, message] of cases) {
      const result = await ociboot(args);
      expect(result.code, `${args.join(" ")}: ${result.stderr}`).toBe(EXIT.notFound);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).not.toMatch(/verified/);
    }
  });

  it.each(EMPTY_IMAGE_TABLE.map((image, position) => [image.label, image, position] as const))(
    "fetch and verify --dir of %s from a registry fail with no boot files (3) and write nothing",
    async (_label, image, position) => {
      const directory = join(work, `empty-image-${position}`);
      await writeOciLayout(directory, {
        manifests: [{ tag: "v1", config: image.config, layers: image.layers, ...(image.artifactType ? { artifactType: image.artifactType } : {}) }],
      });
      const { reference } = await publishWithSkopeo(directory, "v1", registry, `empty/image-${position}`);
      for (const source of [reference, `oci:${directory}:v1`]) {
        const out = join(work, `empty-out-${position}`);
        const fetched = await ociboot(["fetch", source, "-o", out]);
        expect(fetched.code, fetched.stderr).toBe(EXIT.notFound);
        expect(fetched.stderr).toMatch(image.holds);
        expect(fetched.stderr).toMatch(/no boot files.*ociboot pull or ociboot copy.*--referrer/);
        expect(existsSync(out)).toBe(false);
        await mkdir(out);
        const verified = await ociboot(["verify", source, "--dir", out]);
        expect(verified.code, verified.stderr).toBe(EXIT.notFound);
        expect(verified.stderr).toMatch(image.holds);
        await rm(out, { recursive: true });
      }
    },
  );
});
