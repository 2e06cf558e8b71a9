import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { importArchive } from "../../src/ops/import.ts";
import { packBuild, type PackOptions } from "../../src/ops/pack.ts";

const NAME = "kvm-amd64-today";
let work: string;
let build: string;
let temporary: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-pack-"));
  build = join(work, "build");
  temporary = join(work, "tmp");
  await mkdir(build);
  await mkdir(temporary);
  for (const suffix of ["vmlinuz", "initrd", "tar", "os-release", "manifest", "log"]) await writeFile(join(build, `${NAME}.${suffix}`), `${suffix} bytes\n`);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const options = (extra: Partial<PackOptions> = {}): PackOptions => ({
  name: NAME,
  output: join(work, "out.oci.tar.gz"),
  temporaryDirectory: temporary,
  platform: { os: "linux", architecture: "amd64" },
  ...extra,
});

async function configOfBootImage(archive: string): Promise<{ layers: string[]; config: string }> {
  const store = new OciLayoutStore(join(work, `imported-${Math.random()}`));
  const { images } = await importArchive(store, archive);
  const boot = images[0];
  if (boot === undefined) throw new Error("nothing imported");
  const manifest = JSON.parse(new TextDecoder().decode(await store.readBlob(boot))) as { config: never; layers: Array<{ digest: string }> };
  return { layers: manifest.layers.map((layer) => layer.digest), config: new TextDecoder().decode(await store.readBlob(manifest.config)) };
}

describe("packBuild", () => {
  it("takes the rootfs tarball when there is no .rootfs or .squashfs, the command line from --command-line, and removes its temporary store", async () => {
    const result = await packBuild(build, options({ commandLine: "console=ttyS0" }));
    const { config, layers } = await configOfBootImage(join(work, "out.oci.tar.gz"));
    expect(config).toBe('{"commandLine":"console=ttyS0"}');
    expect(layers).toHaveLength(3);
    expect(result.referrers.map((referrer) => referrer.artifactType)).toEqual(["build/os-release", "build/manifest", "build/log"]);
    expect(result.infoReference).toBe(`localhost/build-info:${NAME}`);
    expect(await readdir(temporary)).toEqual([]);
  });

  it("takes the seed's <NAME>.raw (or .tar.gz, .tar.xz) as the rootfs, in the documented order", async () => {
    await unlink(join(build, `${NAME}.tar`));
    const rootfsDigest = async (label: string) => {
      const output = join(work, `${label}.oci.tar.gz`);
      await packBuild(build, options({ commandLine: "console=ttyS0", output }));
      const { layers } = await configOfBootImage(output);
      return layers[0];
    };
    const sha = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;
    await writeFile(join(build, `${NAME}.tar.xz`), "tar.xz bytes\n");
    expect(await rootfsDigest("xz")).toBe(sha("tar.xz bytes\n"));
    await writeFile(join(build, `${NAME}.tar.gz`), "tar.gz bytes\n");
    expect(await rootfsDigest("gz")).toBe(sha("tar.gz bytes\n"));
    await writeFile(join(build, `${NAME}.tar`), "tar bytes\n");
    expect(await rootfsDigest("tar")).toBe(sha("tar bytes\n"));
    await writeFile(join(build, `${NAME}.raw`), "raw disk image\n");
    expect(await rootfsDigest("raw")).toBe(sha("raw disk image\n"));
    await writeFile(join(build, `${NAME}.squashfs`), "squashfs bytes\n");
    expect(await rootfsDigest("squashfs")).toBe(sha("squashfs bytes\n"));
    await writeFile(join(build, `${NAME}.rootfs`), "rootfs bytes\n");
    expect(await rootfsDigest("rootfs")).toBe(sha("rootfs bytes\n"));
  });

  it("refuses a command line given both as <NAME>.cmdline and as an option", async () => {
    await writeFile(join(build, `${NAME}.cmdline`), "quiet\n");
    await expect(packBuild(build, options({ commandLine: "console=ttyS0" }))).rejects.toMatchObject({ code: "USAGE", message: expect.stringContaining("remove one") });
  });

  it("names every missing file at once, the rootfs by its alternatives, and writes nothing", async () => {
    await unlink(join(build, `${NAME}.tar`));
    await unlink(join(build, `${NAME}.initrd`));
    await expect(packBuild(build, options())).rejects.toMatchObject({
      code: "NOT_FOUND",
      message: `Cannot pack build ${NAME} from ${build}: missing ${join(build, `${NAME}.initrd`)}, ${join(build, NAME)}{.rootfs,.squashfs,.raw,.tar,.tar.gz,.tar.xz}`,
    });
    expect((await readdir(work)).sort()).toEqual(["build", "tmp"]);
    expect(await readdir(temporary)).toEqual([]);
  });

  it("fails before building when FILE.partial exists (another pack writes it), and leaves that file alone", async () => {
    await writeFile(join(work, "out.oci.tar.gz.partial"), "someone else's");
    await expect(packBuild(build, options())).rejects.toMatchObject({ code: "LOCAL_IO", message: expect.stringContaining("out.oci.tar.gz.partial exists") });
    expect(await readdir(temporary)).toEqual([]);
    expect((await readdir(work)).sort()).toEqual(["build", "out.oci.tar.gz.partial", "tmp"]);
  });

  it("refuses one tag for both images", async () => {
    await expect(packBuild(build, options({ tag: "ghcr.io/me/os:1", infoTag: "ghcr.io/me/os:1" }))).rejects.toMatchObject({ code: "USAGE", message: expect.stringContaining("another --info-tag") });
  });

  it("refuses a name that is not a plain file name prefix", async () => {
    await expect(packBuild(build, options({ name: "../etc/passwd" }))).rejects.toMatchObject({ code: "USAGE" });
  });
});
