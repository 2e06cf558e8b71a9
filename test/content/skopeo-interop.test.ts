import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { runInProcess } from "../cli/cli-context.ts";

const exec = promisify(execFile);
const DENO = join(process.cwd(), "node_modules", ".bin", "deno");
const MAIN = join(process.cwd(), "src", "main.ts");
let work: string;

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-skopeo-"));
  for (const name of ["vmlinuz", "initrd", "rootfs"]) await writeFile(join(work, name), randomBytes(50_000));
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });
const BUILD = ["--store-path", "store", "build", "--kernel-file", "vmlinuz", "--initramfs-file", "initrd", "--rootfs-file", "rootfs"];
const REF = "127.0.0.1:5000/gardenlinux:today";

describe("layouts shared with skopeo", () => {
  it("skopeo reads and copies a store ociboot wrote, tag names with colons included", async () => {
    const built = await cli(...BUILD, "--tag", REF);
    const hex = built.stdout.trim().split(" ").at(-1) ?? "";
    const { stdout: raw } = await exec("skopeo", ["inspect", "--raw", `oci:${join(work, "store")}:${REF}`]);
    expect(createHash("sha256").update(raw).digest("hex")).toBe(hex);
    await exec("skopeo", ["copy", "--quiet", `oci:${join(work, "store")}:${REF}`, `oci:${join(work, "copy")}:copied`]);
    const copied = JSON.parse(await readFile(join(work, "copy", "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    expect(copied.manifests.map((entry) => entry.digest)).toEqual([`sha256:${hex}`]);
  });

  it("ociboot reads, tags and inspects what skopeo wrote with oci:", async () => {
    const built = await cli(...BUILD, "--tag", REF);
    const hex = built.stdout.trim().split(" ").at(-1) ?? "";
    await exec("skopeo", ["copy", "--quiet", `oci:${join(work, "store")}:${REF}`, `oci:${join(work, "skopeo")}:latest`]);
    const listed = await cli("--store-path", "skopeo", "list");
    expect(listed.stdout).toBe(`REPOSITORY  TAG         IMAGE ID\n<none>      latest      ${hex.slice(0, 12)}\n`);
    expect(JSON.parse((await cli("--store-path", "skopeo", "inspect", "latest")).stdout)).toMatchObject({ descriptor: { digest: `sha256:${hex}` } });
    expect((await cli("--store-path", "skopeo", "tag", "latest", "ghcr.io/a/b:2")).code).toBe(0);
    // skopeo still reads the layout after ociboot rewrote its index.json.
    await exec("skopeo", ["inspect", "--raw", `oci:${join(work, "skopeo")}:ghcr.io/a/b:2`]);
    await exec("skopeo", ["inspect", "--raw", `oci:${join(work, "skopeo")}:latest`]);
    const store = new OciLayoutStore(join(work, "skopeo"));
    expect(await store.resolve("ghcr.io/a/b:2")).toMatchObject({ digest: `sha256:${hex}` });
  });

  it("runs the same commands under Deno as under Node", async () => {
    const { stdout: built } = await exec(DENO, ["run", "-A", MAIN, ...BUILD, "--command-line", "console=ttyS0"], { cwd: work });
    const viaNode = await cli(...BUILD, "--command-line", "console=ttyS0");
    expect(built).toBe(viaNode.stdout);
    const { stdout: listed } = await exec(DENO, ["run", "-A", MAIN, "list", "--store-path", "store"], { cwd: work });
    expect(listed).toBe((await cli("--store-path", "store", "list")).stdout);
  });
});
