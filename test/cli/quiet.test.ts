import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

/**
 * `-q` prints nothing but errors and requested output, for every command: no `Successfully …`,
 * `Copied …`, `Login Succeeded`, progress or transfer lines. What the command exists to print
 * (list, inspect, url, discover, `-o -` bytes, `--json`) still appears, and so do errors.
 */
describe("--quiet", () => {
  let work: string;
  let registry: RunningRegistry;
  let basic: RunningRegistry;
  let image: string;

  const cli = (argv: string[], stdin?: string) => runInProcess(argv, { cwd: work, ...(stdin === undefined ? {} : { stdin }) });
  const expectSilent = async (argv: string[], stdin?: string) => {
    const result = await cli(argv, stdin);
    expect({ code: result.code, stdout: result.stdout, stderr: result.stderr }, argv.join(" ")).toEqual({ code: 0, stdout: "", stderr: "" });
  };
  const expectPrints = async (argv: string[]) => {
    const result = await cli(argv);
    expect(result.code, `${argv.join(" ")}: ${result.stderr}`).toBe(0);
    expect(result.stdout, argv.join(" ")).not.toBe("");
    expect(result.stderr, argv.join(" ")).toBe("");
    return result.stdout;
  };

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-cli-quiet-"));
    [registry, basic] = await Promise.all([startRegistry(), startRegistry({ auth: "basic" })]);
    image = `${registry.host}/os/boot:v1`;
    for (const [name, size] of [["vmlinuz", 200_000], ["initrd", 100_000], ["rootfs", 300_000]] as const) {
      await writeFile(join(work, name), randomBytes(size));
    }
    const build = join(work, "build");
    await mkdir(build);
    for (const suffix of ["vmlinuz", "initrd", "rootfs"]) await writeFile(join(build, `metal.${suffix}`), randomBytes(10_000));
    await writeFile(join(build, "metal.os-release"), 'NAME="Garden Linux"\nVERSION="1592.1"\n');
    await writeFile(join(build, "metal.manifest"), "bash 5.2\n");
    await writeFile(join(build, "metal.log"), "I: done\n");
    await writeFile(join(build, "metal.cmdline"), "console=ttyS0\n");
  }, 60_000);
  afterAll(async () => {
    await Promise.all([registry?.stop(), basic?.stop()]);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("the store commands: build, tag, push, pull, delete, prune, import, info-image, attach", async () => {
    const store = ["--store-path", "store"];
    await expectSilent([...store, "build", "-q", "--kernel-file", "vmlinuz", "--initramfs-file", "initrd", "--rootfs-file", "rootfs", "--tag", image]);
    await expectSilent([...store, "tag", image, `${registry.host}/os/boot:v2`, "-q"]);
    await expectSilent(["-q", ...store, "push", image]);
    await expectSilent([...store, "pull", `${registry.host}/os/boot:v1`, "--quiet"]);
    await expectSilent([...store, "delete", `${registry.host}/os/boot:v2`, "-q"]);
    await expectSilent([...store, "prune", "-q", "--grace", "0"]);
    await expectSilent([...store, "copy", image, "oci-archive:boot.tar", "-q"]);
    await expectSilent(["--store-path", "other", "import", "boot.tar", "-q"]);
    await expectSilent([
      ...store, "info-image", "-q", "--os-release", "build/metal.os-release", "--build-log", "build/metal.log",
      "--package-manifest", "build/metal.manifest", "--tag", "localhost/info:1",
    ]);
    await expectSilent(["attach", "-q", `oci:store:${image}`, "build/metal.log", "--artifact-type", "build/log"]);
    await expectSilent(["attach", "-q", image, "build/metal.log", "--artifact-type", "build/log"]);
  });

  it("copy prints neither Copied nor referrer lines, in any direction", async () => {
    await expectSilent(["copy", image, `oci:copied:${image}`, "--with-referrers", "-q"]);
    await expectSilent(["copy", `oci:copied:${image}`, `${registry.host}/os/copy:v1`, "--with-referrers", "-q"]);
    await expectSilent(["-q", "copy", image, "oci-archive:copied.tar.gz", "--with-referrers"]);
  });

  it("fetch, verify, pack", async () => {
    await expectSilent(["fetch", image, "-o", "boot", "-q"]);
    await expectSilent(["verify", image, "--dir", "boot", "-q"]);
    await expectSilent(["pack", "-q", "--from-build", "build", "--name", "metal", "-o", "metal.oci.tar", "--platform", "linux/amd64"]);
  });

  it("login and logout", async () => {
    const credentials = basic.credentials!;
    await expectSilent(["login", basic.host, "-u", credentials.username, "--password-stdin", "--authfile", "auth.json", "-q"], credentials.password);
    await expectSilent(["logout", basic.host, "--authfile", "auth.json", "-q"]);
  });

  it("still prints what was asked for: list, inspect, url, discover, --json reports, -o - bytes", async () => {
    const store = ["--store-path", "store", "-q"];
    expect(await expectPrints([...store, "list"])).toMatch(/REPOSITORY/);
    expect(await expectPrints([...store, "inspect", image])).toMatch(/"manifest"/);
    expect(await expectPrints(["-q", "url", image, "--layer", "kernel"])).toMatch(/"url"/);
    expect(await expectPrints(["-q", "discover", image])).toMatch(/build\/log/);
    expect(JSON.parse(await expectPrints(["-q", "copy", image, `oci:json:${image}`, "--json"]))).toMatchObject({ destination: `oci:json:${image}` });
    expect(JSON.parse(await expectPrints(["-q", "fetch", image, "-o", "boot-json", "--json"]))).toMatchObject({ files: expect.any(Array) });
    expect((await expectPrints(["-q", "fetch", image, "--role", "kernel", "-o", "-"])).length).toBeGreaterThan(0);
  });

  it("still prints errors", async () => {
    const result = await cli(["--store-path", "store", "tag", "sha256:0000", "x/y:z", "-q"]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/^ociboot: /);
  });
});
