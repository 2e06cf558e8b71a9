import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { closeRegistryConnections, openRepository } from "../../src/registry/repository.ts";
import { interruptOnceWriting, runOk } from "../harness/commands.ts";
import {
  describeBytes,
  encodeManifest,
  makeBootImage,
  OCI_MANIFEST,
  publishWithSkopeo,
  skopeoRegistryFlags,
  writeOciLayout,
  type WrittenLayout,
} from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot, OCIBOOT_BINARY, ocibootUnderDeno } from "./ociboot-binary.ts";

/** The air-gapped transfer, as a user runs it: registry → archive → (carried across) → another registry. */
describe("ociboot copy", () => {
  let work: string;
  let origin: RunningRegistry;
  let airgap: RunningRegistry;
  let boot: WrittenLayout;
  let multi: WrittenLayout;
  let bootReference: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-copy-"));
    [origin, airgap] = await Promise.all([startRegistry(), startRegistry()]);
    const image = (name: string) =>
      makeBootImage({
        kernel: { bytes: randomBytes(200_000) },
        initrd: { bytes: randomBytes(100_000) },
        rootfs: { bytes: randomBytes(400_000) },
        commandLine: `console=ttyS0 ${name}`,
        dialect: "onmetal",
      });
    boot = await writeOciLayout(join(work, "boot-layout"), { manifests: [{ ...image("boot"), tag: "today" }] });
    multi = await writeOciLayout(join(work, "multi-layout"), {
      manifests: [image("amd64"), image("arm64")],
      indexes: [{ tag: "1592.1", manifests: [{ manifest: 0, platform: { os: "linux", architecture: "amd64" } }, { manifest: 1, platform: { os: "linux", architecture: "arm64" } }] }],
    });
    bootReference = (await publishWithSkopeo(boot.directory, "today", origin, "os/boot")).reference;
    await publishWithSkopeo(multi.directory, "1592.1", origin, "os/multi");
  });
  afterAll(async () => {
    await Promise.all([origin?.stop(), airgap?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  const rawManifest = async (reference: string) => (await runOk("skopeo", ["inspect", "--raw", "--tls-verify=false", "--no-creds", `docker://${reference}`])).stdout;
  const manifestOf = (layout: WrittenLayout, position = 0) => {
    const manifest = layout.manifests[position];
    if (manifest === undefined) throw new Error(`no manifest #${position} written`);
    return manifest;
  };

  for (const [file, folderArgs] of [
    ["boot.oci.tar", []],
    ["boot.oci.tar.gz", []],
    ["gardenlinux-metal-amd64.oci.tar.xz", ["--archive-folder", "onmetal"]],
  ] as const) {
    it(`carries an image through ${file}${folderArgs.length > 0 ? " (onmetal/ folder)" : ""}: import, push, byte-identical manifest`, async () => {
      const archive = join(work, file);
      const target = `${airgap.host}/os/${file.replaceAll(".", "-")}:today`;
      const copied = await ociboot(["copy", bootReference, `oci-archive:${archive}:${target}`, ...folderArgs]);
      expect(copied.code, copied.stderr).toBe(0);
      const { descriptor, bytes } = manifestOf(boot);
      expect(copied.stdout).toBe(`Copied ${bootReference} → oci-archive:${archive}:${target} ${descriptor.digest}\n`);
      expect(copied.stderr).toMatch(/^4 blobs to transfer, /);
      expect(copied.stderr).toMatch(new RegExp(`^${descriptor.digest.slice(0, 19)} .* copied$`, "m"));
      expect((await readdir(work)).filter((name) => name.endsWith(".partial"))).toEqual([]);
      if (folderArgs.length > 0) {
        const { stdout } = await runOk("tar", ["-tJf", archive]);
        expect(stdout.split("\n").slice(0, 3)).toEqual(["onmetal/", "onmetal/oci-layout", "onmetal/ingest/"]);
      }

      const store = join(work, `store-${file}`);
      const imported = await ociboot(["--store-path", store, "import", archive]);
      expect(imported.stdout, imported.stderr).toBe(`Successfully imported ${target} ${descriptor.digest.slice("sha256:".length)}\n`);
      const pushed = await ociboot(["--store-path", store, "push", target]);
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(await rawManifest(target)).toBe(bytes.toString("utf8"));
    });
  }

  it("round-trips a multi-arch index registry → .tar.gz → registry with its digest and every manifest preserved, --json", async () => {
    const archive = join(work, "multi.tar.gz");
    const index = multi.indexes[0];
    if (index === undefined) throw new Error("no index written");
    const exported = await ociboot(["copy", `${origin.host}/os/multi:1592.1`, `oci-archive:${archive}`, "--json"]);
    expect(exported.code, exported.stderr).toBe(0);
    expect(JSON.parse(exported.stdout)).toMatchObject({ digest: index.descriptor.digest, mediaType: index.descriptor.mediaType, referrers: [], copied: { count: 2 * 5 + 1 } });

    const target = `${airgap.host}/os/multi:1592.1`;
    const imported = await ociboot(["copy", `oci-archive:${archive}`, target]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stdout).toBe(`Copied oci-archive:${archive} → ${target} ${index.descriptor.digest}\n`);
    expect(await rawManifest(target)).toBe(index.bytes.toString("utf8"));
    for (const manifest of multi.manifests) expect(await rawManifest(`${airgap.host}/os/multi@${manifest.descriptor.digest}`)).toBe(manifest.bytes.toString("utf8"));
  });

  it("exports a plain archive that skopeo reads and ociboot fetch boots from", async () => {
    const archive = join(work, "for-skopeo.tar");
    expect((await ociboot(["copy", bootReference, `oci-archive:${archive}:today`])).code).toBe(0);
    const { descriptor, bytes } = manifestOf(boot);
    expect((await runOk("skopeo", ["inspect", "--raw", `oci-archive:${archive}:today`])).stdout).toBe(bytes.toString("utf8"));
    const viaSkopeo = `${airgap.host}/os/via-skopeo:today`;
    await runOk("skopeo", ["copy", "--preserve-digests", "--quiet", ...skopeoRegistryFlags("dest", airgap), `oci-archive:${archive}:today`, `docker://${viaSkopeo}`]);
    expect(await rawManifest(viaSkopeo)).toBe(bytes.toString("utf8"));

    const out = join(work, "fetched");
    const fetched = await ociboot(["fetch", `oci-archive:${archive}`, "-o", out, "--json"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout)).toMatchObject({ digest: descriptor.digest, commandLine: "console=ttyS0 boot" });
  });

  it("copies registry → oci:DIR:REF → registry and registry → registry", async () => {
    const layout = join(work, "layout-copy");
    const { descriptor, bytes } = manifestOf(boot);
    const toLayout = await ociboot(["copy", bootReference, `oci:${layout}:ghcr.io/me/os:1.0`]);
    expect(toLayout.code, toLayout.stderr).toBe(0);
    const listed = await ociboot(["--store-path", layout, "list"]);
    expect(listed.stdout).toMatch(new RegExp(`^ghcr\\.io/me/os +1\\.0 +${descriptor.digest.slice(7, 19)}$`, "m"));

    const fromLayout = `${airgap.host}/os/from-layout:1.0`;
    expect((await ociboot(["copy", `oci:${layout}:ghcr.io/me/os:1.0`, fromLayout])).code).toBe(0);
    expect(await rawManifest(fromLayout)).toBe(bytes.toString("utf8"));

    const direct = `${airgap.host}/os/direct:today`;
    const copied = await ociboot(["copy", bootReference, `docker://${direct}`, "--quiet"]);
    expect(copied.code, copied.stderr).toBe(0);
    expect(copied.stderr).toBe("");
    expect(await rawManifest(direct)).toBe(bytes.toString("utf8"));
  });

  it("runs from the sources under Deno: registry → .tar.gz and .tar.xz → registry", async () => {
    const { descriptor, bytes } = manifestOf(boot);
    for (const file of ["deno.oci.tar.gz", "deno.oci.tar.xz"]) {
      const archive = join(work, file);
      const exported = await ocibootUnderDeno(["copy", bootReference, `oci-archive:${archive}`]);
      expect(exported.stdout, exported.stderr).toBe(`Copied ${bootReference} → oci-archive:${archive} ${descriptor.digest}\n`);
      const target = `${airgap.host}/os/${file.replaceAll(".", "-")}:today`;
      expect((await ocibootUnderDeno(["copy", `oci-archive:${archive}`, target])).stdout).toContain(descriptor.digest);
      expect(await rawManifest(target)).toBe(bytes.toString("utf8"));
    }
  });

  it("refuses a corrupted blob in the source registry: exit 5, neither FILE nor FILE.partial", async () => {
    const layout = await writeOciLayout(join(work, "corrupt-layout"), {
      manifests: [{ ...makeBootImage({ kernel: { bytes: randomBytes(50_000) }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, dialect: "onmetal" }), tag: "bad" }],
    });
    const reference = (await publishWithSkopeo(layout.directory, "bad", origin, "os/corrupt")).reference;
    const kernel = manifestOf(layout).layers[2] as Descriptor;
    const stored = await readFile(origin.blobDataPath(kernel.digest));
    stored[20_000] = (stored[20_000] ?? 0) ^ 0xff;
    await writeFile(origin.blobDataPath(kernel.digest), stored);

    const out = join(work, "corrupt-out");
    await mkdir(out);
    const copied = await ociboot(["copy", reference, `oci-archive:${join(out, "bad.oci.tar.gz")}`]);
    expect(copied.code).toBe(5);
    expect(copied.stderr).toMatch(new RegExp(`Cannot accept ${kernel.digest}: content hashes to sha256:`));
    expect(await readdir(out)).toEqual([]);
  });

  it("removes FILE.partial when interrupted (Ctrl-C) halfway through a blob", async () => {
    const big = join(work, "big-rootfs");
    await writeFile(big, randomBytes(96 * 1024 * 1024));
    const layout = await writeOciLayout(join(work, "big-layout"), {
      manifests: [{ ...makeBootImage({ kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { file: big }, dialect: "onmetal" }), tag: "big" }],
    });
    const reference = (await publishWithSkopeo(layout.directory, "big", origin, "os/big")).reference;
    const out = join(work, "interrupted");
    await mkdir(out);
    const partial = join(out, "big.oci.tar.gz.partial");
    // gzip of random bytes runs at tens of MB/s: the copy is still inside the rootfs when the signal comes.
    const { code, stderr } = await interruptOnceWriting(OCIBOOT_BINARY, ["copy", reference, `oci-archive:${join(out, "big.oci.tar.gz")}`, "--quiet"], {
      env: { ...process.env, HOME: "/nonexistent" },
      path: partial,
      minBytes: 4 * 1024 * 1024,
    });
    expect(code).toBe(130);
    expect(stderr).toMatch(/Interrupted/);
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses .tar.xz without an xz program, naming .tar.gz, before fetching anything", async () => {
    const out = join(work, "no-xz");
    await mkdir(out);
    const copied = await ociboot(["copy", bootReference, `oci-archive:${join(out, "image.oci.tar.xz")}`], { env: { PATH: "/nonexistent" } });
    expect(copied.code).toBe(6);
    expect(copied.stderr).toMatch(/needs the xz program.*\.tar\.gz/);
    expect(await readdir(out)).toEqual([]);
  });

  it("refuses --archive-folder for a destination that is not an archive", async () => {
    const copied = await ociboot(["copy", bootReference, `oci:${join(work, "x")}`, "--archive-folder", "onmetal"]);
    expect(copied.code).toBe(2);
    expect(copied.stderr).toMatch(/--archive-folder/);
  });

  describe("--with-referrers", () => {
    let referrer: Descriptor;
    let referrerBytes: Buffer;

    beforeAll(async () => {
      // A build log attached to the boot image with ociboot's registry client, which also writes
      // the fallback tag sha256-<hex> (distribution 2.8 has no referrers API).
      const options = { env: {}, homeDir: work };
      const repository = openRepository({ registry: origin.host, repository: "os/boot" }, options);
      const log = describeBytes("text/plain", "build log of today", { "org.opencontainers.image.title": "build.log" });
      const empty = describeBytes("application/vnd.oci.empty.v1+json", "{}");
      referrerBytes = encodeManifest({ artifactType: "build/log", config: empty, layers: [log], subject: manifestOf(boot).descriptor });
      referrer = describeBytes(OCI_MANIFEST, referrerBytes);
      await repository.push(log, new Blob(["build log of today"]).stream());
      await repository.push(empty, new Blob(["{}"]).stream());
      await repository.push(referrer, new Blob([referrerBytes]).stream());
      await closeRegistryConnections(options);
    });

    it("carries the referrers registry → archive → registry, where the fallback tag lists them again", async () => {
      const archive = join(work, "with-referrers.oci.tar.gz");
      const exported = await ociboot(["copy", bootReference, `oci-archive:${archive}`, "--with-referrers"]);
      expect(exported.code, exported.stderr).toBe(0);
      const { descriptor, bytes } = manifestOf(boot);
      expect(exported.stdout).toBe(`Copied referrer ${referrer.digest} (build/log)\nCopied ${bootReference} → oci-archive:${archive} ${descriptor.digest}\n`);

      // Without a REF the archive's image is the one that is no referrer.
      const target = `${airgap.host}/os/with-referrers:today`;
      const imported = await ociboot(["copy", `oci-archive:${archive}`, target, "--with-referrers", "--json"]);
      expect(imported.code, imported.stderr).toBe(0);
      expect(JSON.parse(imported.stdout).referrers).toEqual([{ digest: referrer.digest, mediaType: OCI_MANIFEST, size: referrer.size, artifactType: "build/log" }]);
      expect(await rawManifest(target)).toBe(bytes.toString("utf8"));
      expect(await rawManifest(`${airgap.host}/os/with-referrers@${referrer.digest}`)).toBe(referrerBytes.toString("utf8"));
      const fallback = JSON.parse(await rawManifest(`${airgap.host}/os/with-referrers:sha256-${descriptor.digest.slice("sha256:".length)}`));
      expect(fallback.manifests).toEqual([expect.objectContaining({ digest: referrer.digest, artifactType: "build/log" })]);
    });

    it("names the image of an archive with referrers by the source tag, so skopeo and import find it", async () => {
      const archive = join(work, "named-with-referrers.oci.tar");
      const exported = await ociboot(["copy", bootReference, `oci-archive:${archive}`, "--with-referrers", "--quiet"]);
      expect(exported.code, exported.stderr).toBe(0);
      const { descriptor } = manifestOf(boot);
      const tag = bootReference.slice(bootReference.lastIndexOf(":") + 1);
      const index = JSON.parse((await runOk("tar", ["-xOf", archive, "index.json"])).stdout);
      expect(index.manifests.map((entry: Descriptor) => [entry.digest, entry.annotations?.["org.opencontainers.image.ref.name"]])).toEqual([
        [descriptor.digest, tag],
        [referrer.digest, undefined],
      ]);
      // skopeo takes an unnamed layout image only when it is the one entry; by name it finds it.
      const inspected = JSON.parse((await runOk("skopeo", ["inspect", "--raw", `oci-archive:${archive}:${tag}`])).stdout);
      expect(inspected).toEqual(JSON.parse(manifestOf(boot).bytes.toString("utf8")));
      const store = join(work, "named-import");
      expect((await ociboot(["--store-path", store, "import", archive])).code).toBe(0);
      const listed = JSON.parse((await ociboot(["--store-path", store, "list", "--json"])).stdout) as Array<{ reference: string | null; digest: string }>;
      expect(listed.map((row) => [row.reference, row.digest])).toEqual([[tag, descriptor.digest]]);
      // An explicit REF still wins.
      const explicit = join(work, "explicit-with-referrers.oci.tar");
      expect((await ociboot(["copy", bootReference, `oci-archive:${explicit}:mine`, "--with-referrers", "--quiet"])).code).toBe(0);
      expect(JSON.parse((await runOk("skopeo", ["inspect", "--raw", `oci-archive:${explicit}:mine`])).stdout)).toEqual(inspected);
    });

    it("carries the referrers registry → registry and registry → oci:DIR directly", async () => {
      const { descriptor } = manifestOf(boot);
      const target = `${airgap.host}/os/direct-referrers:today`;
      expect((await ociboot(["copy", bootReference, target, "--with-referrers", "--quiet"])).code).toBe(0);
      expect(await rawManifest(`${airgap.host}/os/direct-referrers@${referrer.digest}`)).toBe(referrerBytes.toString("utf8"));
      const fallback = JSON.parse(await rawManifest(`${airgap.host}/os/direct-referrers:sha256-${descriptor.digest.slice("sha256:".length)}`));
      expect(fallback.manifests.map((entry: Descriptor) => entry.digest)).toEqual([referrer.digest]);

      const layout = join(work, "referrers-layout");
      expect((await ociboot(["copy", bootReference, `oci:${layout}:today`, "--with-referrers", "--quiet"])).code).toBe(0);
      const index = JSON.parse(await readFile(join(layout, "index.json"), "utf8"));
      expect(index.manifests.map((entry: Descriptor) => [entry.digest, entry.annotations?.["org.opencontainers.image.ref.name"]])).toEqual([
        [descriptor.digest, "today"],
        [referrer.digest, undefined],
      ]);
      expect(await readFile(join(layout, "blobs", "sha256", referrer.digest.slice("sha256:".length)), "utf8")).toBe(referrerBytes.toString("utf8"));
    });

    it("leaves the referrers behind without the flag", async () => {
      const archive = join(work, "without-referrers.tar");
      const exported = await ociboot(["copy", bootReference, `oci-archive:${archive}`, "--json"]);
      expect(JSON.parse(exported.stdout).referrers).toEqual([]);
      const index = JSON.parse((await runOk("tar", ["-xOf", archive, "index.json"])).stdout);
      expect(index.manifests.map((entry: Descriptor) => entry.digest)).toEqual([manifestOf(boot).descriptor.digest]);
    });
  });
});
