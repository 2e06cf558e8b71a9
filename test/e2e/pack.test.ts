import { randomBytes } from "node:crypto";
import { access, mkdtemp, readFile, readdir, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { interruptOnceWriting, runOk } from "../harness/commands.ts";
import { pullWithPodman } from "../harness/container-tools.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { OCIBOOT_BINARY, ociboot } from "./ociboot-binary.ts";

const NAME = "metal-gardener_prod-amd64-1592.1-0123abcd";
const COMMAND_LINE = "console=ttyS0,115200 root=LABEL=ROOT <quiet> & more";
const TEXT_FILES = {
  "os-release": 'NAME="Garden Linux"\nVERSION="1592.1"\nID=gardenlinux\n',
  manifest: "bash 5.2.15-2\nsystemd 252.17-1\n".repeat(100),
  log: "I: Configuring package\n".repeat(10_000),
} as const;

let work: string;
let build: string;
let registry: RunningRegistry;
const inputs = new Map<string, Buffer>();

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-e2e-pack-"));
  build = join(work, "build");
  await runOk("mkdir", ["-p", build]);
  const binary = { vmlinuz: randomBytes(300_000), initrd: randomBytes(200_000), squashfs: randomBytes(500_000) };
  for (const [suffix, bytes] of Object.entries(binary)) inputs.set(suffix, bytes);
  for (const [suffix, text] of Object.entries(TEXT_FILES)) inputs.set(suffix, Buffer.from(text));
  inputs.set("cmdline", Buffer.from(`${COMMAND_LINE}\n`));
  for (const [suffix, bytes] of inputs) await writeFile(join(build, `${NAME}.${suffix}`), bytes);
  registry = await startRegistry();
});
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

describe("ociboot pack", () => {
  let archive: string;
  let store: string;
  let bootHex: string;
  let infoHex: string;
  const infoReference = `localhost/build-info:${NAME}`;

  beforeAll(async () => {
    archive = join(work, `${NAME}.oci.tar.xz`);
    const packed = await ociboot(["pack", "--from-build", build, "--name", NAME, "-o", archive, "--platform", "linux/amd64"]);
    expect(packed.code, packed.stderr).toBe(0);
    bootHex = /boot image {2}([0-9a-f]{64})$/m.exec(packed.stdout)?.[1] ?? "";
    infoHex = new RegExp(`info image {2}${infoReference} ([0-9a-f]{64})$`, "m").exec(packed.stdout)?.[1] ?? "";
    expect(bootHex, packed.stdout).not.toBe("");
    expect(infoHex, packed.stdout).not.toBe("");
    store = join(work, "store");
    const imported = await ociboot(["--store-path", store, "import", archive]);
    expect(imported.code, imported.stderr).toBe(0);
  });

  it("builds the boot image byte-identical to `ociboot build` (onmetal-image's encoding) from the same files", async () => {
    const built = await ociboot([
      "--store-path", join(work, "build-store"), "build",
      "--rootfs-file", join(build, `${NAME}.squashfs`), "--initramfs-file", join(build, `${NAME}.initrd`),
      "--kernel-file", join(build, `${NAME}.vmlinuz`), "--command-line", COMMAND_LINE,
    ]);
    expect(built.stdout).toBe(`Successfully built ${bootHex}\n`);
  });

  it("archives an onmetal/ store that imports: list shows the untagged boot image and the tagged info image; --all the referrers too", async () => {
    const entries = (await runOk("tar", ["-tJf", archive])).stdout.split("\n");
    expect(entries).toContain("onmetal/index.json");
    expect(entries).toContain("onmetal/ingest/");
    const listed = JSON.parse((await ociboot(["--store-path", store, "list", "--json"])).stdout) as Array<{ reference: string | null; digest: string }>;
    const rows = listed.map((row) => [row.reference, row.digest]);
    expect(rows).toContainEqual([null, `sha256:${bootHex}`]);
    expect(rows).toContainEqual([infoReference, `sha256:${infoHex}`]);
    expect(listed).toHaveLength(2);
    const table = (await ociboot(["--store-path", store, "list"])).stdout;
    expect(table.split("\n")).toHaveLength(4);
    expect(table).toMatch(new RegExp(`^<none> +<none> +${bootHex.slice(0, 12)}$`, "m"));
    expect(table).toMatch(new RegExp(`^localhost/build-info +${NAME} +${infoHex.slice(0, 12)}$`, "m"));
    const all = JSON.parse((await ociboot(["--store-path", store, "list", "--json", "--all"])).stdout) as Array<{ type: string; artifactType?: string; subject?: string }>;
    expect(all.filter((row) => row.type === "referrer").map((row) => [row.artifactType, row.subject]).sort()).toEqual(
      ["build/log", "build/manifest", "build/os-release"].map((type) => [type, `sha256:${bootHex}`]),
    );
    expect(all.filter((row) => row.type === "image")).toHaveLength(2);
    const allTable = (await ociboot(["--store-path", store, "list", "--all"])).stdout;
    expect(allTable).toMatch(/^REPOSITORY +TAG +IMAGE ID +TYPE$/m);
    expect(allTable).toMatch(/ referrer build\/os-release$/m);
  });

  it("fetches from the archive without a REF: the boot image is its only image; the files equal the inputs", async () => {
    const output = join(work, "fetched");
    const fetched = await ociboot(["fetch", `oci-archive:${archive}`, "-o", output, "--quiet"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(await readFile(join(output, "vmlinuz"))).toEqual(inputs.get("vmlinuz"));
    expect(await readFile(join(output, "initrd"))).toEqual(inputs.get("initrd"));
    expect(await readFile(join(output, "rootfs"))).toEqual(inputs.get("squashfs"));
    expect(await readFile(join(output, "cmdline"), "utf8")).toBe(`${COMMAND_LINE}\n`);
  });

  it("attaches os-release, package manifest and build log to the boot image; discover lists them with the info image", async () => {
    const discovered = await ociboot(["discover", `oci:${store}:sha256:${bootHex}`, "--json"]);
    expect(discovered.code, discovered.stderr).toBe(0);
    const listing = JSON.parse(discovered.stdout) as { manifests: Array<{ digest: string; artifactType: string; layers: Array<{ annotations: Record<string, string> }> }> };
    const byType = new Map(listing.manifests.map((manifest) => [manifest.artifactType, manifest]));
    for (const [type, suffix] of [["build/os-release", "os-release"], ["build/manifest", "manifest"], ["build/log", "log"]] as const) {
      expect(byType.get(type)?.layers.map((layer) => layer.annotations["org.opencontainers.image.title"])).toEqual([`${NAME}.${suffix}`]);
    }
    expect(byType.get("application/vnd.oci.image.config.v1+json")?.digest).toBe(`sha256:${infoHex}`);
  });

  it("holds an info image that, pushed to a registry, is a container image skopeo inspects and podman pulls", async () => {
    const reference = `${registry.host}/gardenlinux/info:1592.1`;
    expect((await ociboot(["--store-path", store, "tag", infoReference, reference])).code).toBe(0);
    const pushed = await ociboot(["--store-path", store, "push", reference]);
    expect(pushed.code, pushed.stderr).toBe(0);
    const inspected = JSON.parse((await runOk("skopeo", ["inspect", "--tls-verify=false", "--no-creds", `docker://${reference}`])).stdout) as Record<string, unknown>;
    expect(inspected).toMatchObject({ Digest: `sha256:${infoHex}`, Os: "linux", Architecture: "amd64" });
    const { inspect } = await pullWithPodman(registry, reference);
    expect(inspect).toMatchObject({ Digest: `sha256:${infoHex}` });
  });

  it("gives the same archive bytes for the same build folder", async () => {
    const again = join(work, "again.oci.tar.xz");
    const packed = await ociboot(["pack", "--from-build", build, "--name", NAME, "-o", again, "--platform", "linux/amd64"]);
    expect(packed.code, packed.stderr).toBe(0);
    expect(await readFile(again)).toEqual(await readFile(archive));
  });

  it("names --tag for the boot image and REF-info for the info image", async () => {
    const tagged = join(work, "tagged.oci.tar.gz");
    const packed = await ociboot(["pack", "--from-build", build, "--name", NAME, "-o", tagged, "--tag", "ghcr.io/me/gardenlinux:1592.1"]);
    expect(packed.code, packed.stderr).toBe(0);
    expect(packed.stdout).toContain(`boot image  ghcr.io/me/gardenlinux:1592.1 ${bootHex}`);
    expect(packed.stdout).toMatch(/info image {2}ghcr\.io\/me\/gardenlinux:1592\.1-info [0-9a-f]{64}/);
  });

  it("reports with --json what it packed, digests matching the archive's store", async () => {
    const reported = join(work, "reported.oci.tar.gz");
    const packed = await ociboot(["pack", "--from-build", build, "--name", NAME, "-o", reported, "--platform", "linux/amd64", "--json"]);
    expect(packed.code, packed.stderr).toBe(0);
    const report = JSON.parse(packed.stdout) as {
      archive: string;
      bootImage: { reference: string | null; digest: string; mediaType: string; size: number };
      infoImage: { reference: string; digest: string };
      referrers: Array<{ artifactType: string; digest: string }>;
    };
    expect(report.archive).toBe(reported);
    expect(report.bootImage).toMatchObject({ reference: null, digest: `sha256:${bootHex}`, mediaType: expect.stringContaining("manifest") });
    expect(report.bootImage.size).toBeGreaterThan(0);
    expect(report.referrers.map((referrer) => referrer.artifactType).sort()).toEqual(["build/log", "build/manifest", "build/os-release"]);
    const verified = await ociboot(["verify", `oci-archive:${reported}`, "--json"]);
    expect(verified.code, verified.stderr).toBe(0);
    for (const digest of [report.bootImage.digest, report.infoImage.digest, ...report.referrers.map((referrer) => referrer.digest)]) {
      expect(verified.stdout).toContain(digest);
    }
  });

  it("refuses a build folder with a missing file, naming it, and leaves neither FILE nor FILE.partial", async () => {
    const partial = join(work, "partial-build");
    await runOk("cp", ["-r", build, partial]);
    await unlink(join(partial, `${NAME}.log`));
    const output = join(work, "missing.oci.tar.xz");
    const failed = await ociboot(["pack", "--from-build", partial, "--name", NAME, "-o", output]);
    expect(failed.code).toBe(3);
    expect(failed.stderr).toContain(`Cannot pack build ${NAME} from ${partial}: missing ${join(partial, `${NAME}.log`)}`);
    expect(await exists(output)).toBe(false);
    expect(await exists(`${output}.partial`)).toBe(false);
    expect((await readdir(work)).filter((name) => name.startsWith("missing"))).toEqual([]);
  });
  it("leaves neither FILE nor FILE.partial nor its temporary store when interrupted (Ctrl-C) while archiving", async () => {
    const big = join(work, "big.rootfs");
    await writeFile(big, randomBytes(64 * 1024 * 1024));
    const out = join(work, "interrupted");
    const temporary = join(work, "interrupted-tmp");
    await runOk("mkdir", ["-p", out, temporary]);
    const partial = join(out, "big.oci.tar.xz.partial");
    // xz on all cores writes a block only once it is compressed whole: level 0's 1 MiB blocks reach
    // the disk soon, while the 64 MiB of random bytes keep xz busy for far longer than the signal takes.
    const args = ["pack", "--from-build", build, "--name", NAME, "--rootfs-file", big, "-o", join(out, "big.oci.tar.xz"), "--compression-level", "0"];
    const { code, stderr } = await interruptOnceWriting(OCIBOOT_BINARY, args, {
      env: { ...process.env, HOME: "/nonexistent", OCIBOOT_TMPDIR: temporary },
      path: partial,
      minBytes: 1024 * 1024,
      timeoutMs: 60_000,
    });
    expect(code).toBe(130);
    expect(stderr).toMatch(/Interrupted/);
    expect(await readdir(out)).toEqual([]);
    expect(await readdir(temporary)).toEqual([]);
  }, 120_000);
});
