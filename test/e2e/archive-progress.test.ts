import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { plainScreen, runInPty } from "../harness/pty.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

const ENV = { ...process.env, HOME: "/nonexistent" };
const REF = "ghcr.io/me/os:1";

/** The built binary on a real pseudo-terminal: bars, as fetch draws them, for archive work. */
describe("archive work on a terminal", () => {
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-archive-progress-"));
    await writeFile(join(work, "rootfs"), randomBytes(4 * 1024 * 1024));
    await writeFile(join(work, "small"), randomBytes(100_000));
    const built = await ociboot(["--store-path", join(work, "store"), "build", "--rootfs-file", join(work, "rootfs"), "--initramfs-file", join(work, "small"), "--kernel-file", join(work, "small"), "--tag", REF]);
    expect(built.code, built.stderr).toBe(0);
  }, 60_000);
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("copy to .tar.xz and import draw bars to 100%, end on a fresh line, and print no log lines over them", async () => {
    const archive = join(work, "os.oci.tar.xz");
    const copy = runInPty(OCIBOOT_BINARY, ["--store-path", join(work, "store"), "copy", `oci:${join(work, "store")}:${REF}`, `oci-archive:${archive}`, "--compression-level", "0"], { env: ENV, timeoutSeconds: 60 });
    const copied = await copy.exited;
    expect(copied.code, copied.screen).toBe(0);
    const copyScreen = plainScreen(copied.screen);
    expect(copyScreen).toMatch(/sha256:[0-9a-f]{12} \|█+\| 100% 4\.00 MiB\/4\.00 MiB/);
    expect(copyScreen).not.toMatch(/ copied$|blobs to transfer/m);
    expect(copyScreen).toMatch(/\nCopied /);

    const imported = runInPty(OCIBOOT_BINARY, ["--store-path", join(work, "imported"), "import", archive], { env: ENV, timeoutSeconds: 60 });
    const done = await imported.exited;
    expect(done.code, done.screen).toBe(0);
    const importScreen = plainScreen(done.screen);
    expect(importScreen).toMatch(/os\.oci\.tar\.xz \|█+\| 100% /);
    expect(importScreen).toMatch(/\nSuccessfully imported /);
    // The cursor is shown again once the bars end.
    expect(done.screen).toContain("\x1b[?25h");

    const quiet = runInPty(OCIBOOT_BINARY, ["--store-path", join(work, "quiet"), "-q", "import", archive], { env: ENV, timeoutSeconds: 60 });
    const silent = await quiet.exited;
    expect(silent.code, silent.screen).toBe(0);
    expect(plainScreen(silent.screen).trim()).toBe("");
  }, 120_000);
});
