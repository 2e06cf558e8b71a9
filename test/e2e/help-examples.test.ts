import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

/**
 * Runs every example that `ociboot --help` and `ociboot COMMAND --help` print, as a user would
 * paste it into bash, against a real registry standing in for the hosts the examples name
 * (`127.0.0.1:5000`, `ghcr.io`, `registry.airgap:5000`). The examples build on each other in
 * the order below (a store built, then pushed, then copied …), over one published multi-arch image
 * with a build log attached: `127.0.0.1:5000/os/metal:today`.
 */
const ORDER = [
  "build", "tag", "list", "inspect", "push", "pull", "tags", "manifest", "digest", "url", "copy", "fetch", "verify",
  "import", "attach", "discover", "pack", "info-image", "delete", "prune", "login", "logout", "completion",
];
const NAMED_HOSTS = /\b(?:127\.0\.0\.1:5000|ghcr\.io|registry\.airgap:5000)\b/g;
const BUILD_NAME = "metal-gardener_prod-amd64-1592.1";

let registry: RunningRegistry;
let work: string;
let env: Record<string, string>;

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "ociboot-help-examples-"));
  const bin = join(work, ".bin");
  await mkdir(bin);
  await symlink(OCIBOOT_BINARY, join(bin, "ociboot"));
  env = {
    PATH: `${bin}:${process.env["PATH"] ?? "/usr/bin:/bin"}`,
    HOME: work,
    DOCKER_CONFIG: join(work, ".docker"),
    OCIBOOT_STORE: join(work, ".onmetal"),
    TOKEN: "registry-token",
  };
  for (const name of ["vmlinuz", "initrd", "rootfs.tar", "vmlinuz-amd64", "initrd-amd64", "vmlinuz-arm64", "initrd-arm64"]) {
    await writeFile(join(work, name), randomBytes(4096));
  }
  await writeFile(join(work, "metal.os-release"), 'NAME="Garden Linux"\nVERSION="1592.1"\nID=gardenlinux\n');
  await writeFile(join(work, "metal.log"), "I: building\n".repeat(100));
  await writeFile(join(work, "metal.manifest"), "linux-image-amd64 6.1.0\n");
  await writeFile(join(work, "password.txt"), "secret\n");
  await mkdir(join(work, ".build"));
  for (const suffix of ["vmlinuz", "initrd", "tar"]) await writeFile(join(work, ".build", `${BUILD_NAME}.${suffix}`), randomBytes(4096));
  for (const suffix of ["os-release", "manifest", "log"]) await writeFile(join(work, ".build", `${BUILD_NAME}.${suffix}`), `${suffix} of the build\n`);
  await writeFile(join(work, ".build", `${BUILD_NAME}.cmdline`), "console=ttyS0\n");
  // Where a user keeps completion scripts, as the completion examples expect.
  await mkdir(join(work, ".zfunc"));
  await mkdir(join(work, ".config", "fish", "completions"), { recursive: true });

  const image = `${registry.host}/os/metal:today`;
  const setup = [
    ["--store-path", "seed", "build", "--format", "ironcore", "--command-line", "console=ttyS0", "--tag", image,
      "--config", "arch=amd64,kernel=vmlinuz-amd64,initramfs=initrd-amd64", "--config", "arch=arm64,kernel=vmlinuz-arm64,initramfs=initrd-arm64"],
    ["--store-path", "seed", "push", image],
    ["attach", image, "metal.log", "--artifact-type", "build/log"],
  ];
  for (const args of setup) {
    const result = await ociboot(args, { cwd: work, env });
    expect(result.code, `ociboot ${args.join(" ")}: ${result.stderr}`).toBe(0);
  }
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The lines under "Examples:" in a help text. */
function examplesIn(help: string): string[] {
  const lines = help.split("\n");
  const start = lines.indexOf("Examples:");
  if (start < 0) return [];
  const examples: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!line.startsWith("  ")) break;
    examples.push(line.trim());
  }
  return examples;
}

async function helpOf(args: string[]): Promise<string> {
  const result = await ociboot([...args, "--help"], { cwd: work, env });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout;
}

/** Command names as the top-level help lists them. */
function commandsIn(help: string): string[] {
  return [...help.matchAll(/^ {2}([a-z][a-z-]*)(?:\|[a-z]+)? (?:\[options\]|<|\[command\]|$)/gm)].map((match) => match[1] as string).filter((name) => name !== "help");
}

describe("help examples", () => {
  it("every example of every command runs and exits 0", async () => {
    const topLevel = await helpOf([]);
    const listed = commandsIn(topLevel);
    const commands = [...ORDER.filter((name) => listed.includes(name)), ...listed.filter((name) => !ORDER.includes(name))];
    let count = 0;
    for (const command of [...commands, ""]) {
      const examples = examplesIn(await helpOf(command === "" ? [] : [command]));
      expect(examples.length, `ociboot ${command} --help has no examples`).toBeGreaterThan(0);
      for (const example of examples) {
        const line = example.replace(NAMED_HOSTS, registry.host);
        const result = await run("bash", ["-o", "pipefail", "-ec", line], { cwd: work, env, timeoutMs: 120_000 });
        expect(result.code, `${example}\n${result.stderr}`).toBe(0);
        count++;
      }
    }
    expect(count).toBeGreaterThanOrEqual(50);
  }, 600_000);
});
