import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run, runOk } from "../harness/commands.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

const FIXTURE = join(import.meta.dirname, "..", "..", ".tmp", "boot-fixture");
const COMMAND_LINE = "console=ttyS0 panic=-1 quiet ociboot.test=fetched-cmdline";

/**
 * The whole main job, end to end: a real Debian kernel and a busybox initramfs published to a real
 * registry in the onmetal dialect, fetched by the built binary, booted in qemu.
 */
describe("boot a fetched image in qemu", () => {
  let registry: RunningRegistry;
  let work: string;
  let reference: string;

  beforeAll(async () => {
    await runOk("bash", [join(import.meta.dirname, "..", "..", "scripts", "boot-fixture.sh"), FIXTURE], { timeoutMs: 300_000 });
    work = await mkdtemp(join(tmpdir(), "ociboot-boot-"));
    registry = await startRegistry();
    const layout = join(work, "layout");
    await writeOciLayout(layout, {
      manifests: [
        makeBootImage({
          dialect: "onmetal",
          tag: "boot",
          kernel: { file: join(FIXTURE, "vmlinuz") },
          initrd: { file: join(FIXTURE, "initrd") },
          rootfs: { bytes: "a small stand-in root file system" },
          commandLine: COMMAND_LINE,
        }),
      ],
    });
    reference = (await publishWithSkopeo(layout, "boot", registry, "gardenlinux/metal")).reference;
  }, 300_000);

  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("boots the fetched kernel and initrd with the fetched command line", async () => {
    const out = join(work, "out");
    const fetched = await ociboot(["fetch", reference, "-o", out, "--json"]);
    expect(fetched.stderr).toBe("");
    expect(fetched.code).toBe(0);
    expect(JSON.parse(fetched.stdout)).toMatchObject({ dialect: "onmetal", commandLine: COMMAND_LINE });

    const commandLine = (await readFile(join(out, "cmdline"), "utf8")).trim();
    const boot = await run(
      "qemu-system-x86_64",
      ["-accel", "tcg", "-nodefaults", "-serial", "stdio", "-display", "none", "-m", "256", "-no-reboot",
        "-kernel", join(out, "vmlinuz"), "-initrd", join(out, "initrd"), "-append", commandLine],
      { timeoutMs: 120_000 },
    );
    expect(boot.stdout).toContain(`OCIBOOT-BOOT-MARKER cmdline=[${COMMAND_LINE}]`);
    expect(boot.code).toBe(0);
  }, 180_000);
});
