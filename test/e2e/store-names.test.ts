import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runOk } from "../harness/commands.ts";
import { ociboot } from "./ociboot-binary.ts";

const REF_NAME = "org.opencontainers.image.ref.name";

async function refNames(store: string): Promise<string[]> {
  const index = JSON.parse(await readFile(join(store, "index.json"), "utf8")) as { manifests: Array<{ annotations?: Record<string, string> }> };
  return index.manifests.flatMap((entry) => (entry.annotations?.[REF_NAME] === undefined ? [] : [entry.annotations[REF_NAME]]));
}

describe("one name, one image: short and normalized spellings resolve alike in stores", () => {
  let work: string;
  let store: string;
  let digest: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-names-"));
    store = join(work, "store");
    for (const [name, text] of [["vmlinuz", "kernel"], ["initrd", "initrd"], ["rootfs", "rootfs"]] as const) await writeFile(join(work, name), text.repeat(1000));
    const built = await ociboot(["--store-path", store, "build", "--kernel-file", join(work, "vmlinuz"), "--initramfs-file", join(work, "initrd"), "--rootfs-file", join(work, "rootfs"), "--tag", "lab/small:v1"]);
    expect(built.code, built.stderr).toBe(0);
    digest = `sha256:${built.stdout.trim().split(" ").at(-1)}`;
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("build --tag lab/small:v1 stores docker.io/lab/small:v1", async () => {
    expect(await refNames(store)).toEqual(["docker.io/lab/small:v1"]);
  });

  it.each(["lab/small:v1", "docker.io/lab/small:v1", "index.docker.io/lab/small:v1"])("fetch and copy oci:DIR:%s find it", async (name) => {
    const out = join(work, `fetch-${name.replace(/\W/g, "-")}`);
    const fetched = await ociboot(["fetch", `oci:${store}:${name}`, "-o", out, "--quiet"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(await readFile(join(out, "vmlinuz"), "utf8")).toBe("kernel".repeat(1000));
    const archive = join(work, `copy-${name.replace(/\W/g, "-")}.tar`);
    const copied = await ociboot(["copy", `oci:${store}:${name}`, `oci-archive:${archive}`, "--quiet"]);
    expect(copied.code, copied.stderr).toBe(0);
    expect(existsSync(archive)).toBe(true);
  });

  it.each(["lab/small:v1", "docker.io/lab/small:v1"])("--store-path commands find %s (inspect)", async (name) => {
    const inspected = await ociboot(["--store-path", store, "inspect", name]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(JSON.parse(inspected.stdout).descriptor.digest).toBe(digest);
  });

  it("a short name written by skopeo is found by its normalized spelling; tag and delete treat both as one name", async () => {
    const other = join(work, "skopeo-store");
    await runOk("skopeo", ["copy", "--quiet", `oci:${store}:docker.io/lab/small:v1`, `oci:${other}:lab/other:v2`]);
    expect(await refNames(other)).toEqual(["lab/other:v2"]);

    const out = join(work, "fetch-skopeo");
    const fetched = await ociboot(["fetch", `oci:${other}:docker.io/lab/other:v2`, "-o", out, "--quiet"]);
    expect(fetched.code, fetched.stderr).toBe(0);
    const inspected = await ociboot(["--store-path", other, "inspect", "docker.io/lab/other:v2"]);
    expect(inspected.code, inspected.stderr).toBe(0);

    // Tagging the normalized spelling replaces the short one: still one entry for the name.
    const tagged = await ociboot(["--store-path", other, "tag", digest, "lab/other:v2"]);
    expect(tagged.code, tagged.stderr).toBe(0);
    expect(await refNames(other)).toEqual(["docker.io/lab/other:v2"]);

    const deleted = await ociboot(["--store-path", other, "delete", "lab/other:v2"]);
    expect(deleted.code, deleted.stderr).toBe(0);
    expect(await refNames(other)).toEqual([]);
  });
});
