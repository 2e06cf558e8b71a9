import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { runInProcess } from "./cli-context.ts";

let work: string;
const scripts: Record<string, string> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-completion-"));
  for (const shell of ["bash", "zsh", "fish"]) {
    const result = await runInProcess(["completion", shell], { cwd: work });
    expect(result.code, result.stderr).toBe(0);
    scripts[shell] = join(work, `ociboot.${shell}`);
    await writeFile(scripts[shell] as string, result.stdout);
  }
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

/** What bash completes for a command line whose last word is being typed, with the script sourced. */
async function bashCompletes(...words: string[]): Promise<string[]> {
  const program = [
    `source ${scripts["bash"]}`,
    `COMP_WORDS=(${words.map((word) => `'${word}'`).join(" ")})`,
    `COMP_CWORD=${words.length - 1}`,
    "_ociboot",
    `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ].join("\n");
  const result = await run("bash", ["-c", program]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.split("\n").filter(Boolean);
}

describe("completion scripts", () => {
  it("are valid bash, zsh and fish", async () => {
    for (const [shell, check] of [["bash", ["-n"]], ["zsh", ["-n"]], ["fish", ["--no-execute"]]] as const) {
      const result = await run(shell, [...check, scripts[shell] as string]);
      expect(result.code, `${shell}: ${result.stderr}`).toBe(0);
    }
  });

  it("complete commands, options and fixed option values in bash", async () => {
    expect(await bashCompletes("ociboot", "fe")).toEqual(["fetch"]);
    expect(await bashCompletes("ociboot", "ta")).toEqual(["tags", "tag"]);
    expect(await bashCompletes("ociboot", "fetch", "--ro")).toEqual(["--role"]);
    expect(await bashCompletes("ociboot", "fetch", "REF", "--role", "")).toEqual(["kernel", "initrd", "rootfs", "squashfs", "uki", "iso", "cmdline", "executable"]);
    expect(await bashCompletes("ociboot", "fetch", "--role", "kernel,in")).toEqual(["kernel,initrd"]);
    expect(await bashCompletes("ociboot", "--store-path", "s", "build", "--format", "")).toEqual(["onmetal", "ironcore"]);
    expect(await bashCompletes("ociboot", "url", "REF", "--layer", "in")).toEqual(["initramfs", "initrd"]);
    expect(await bashCompletes("ociboot", "completion", "")).toEqual(["bash", "zsh", "fish"]);
    expect(await bashCompletes("ociboot", "help", "dig")).toEqual(["digest"]);
  });

  it("offer only the options a command takes: no registry option on a store command, no store option on fetch", async () => {
    const list = await bashCompletes("ociboot", "list", "--");
    expect(list).toContain("--store-path");
    expect(list).not.toContain("--ca-file");
    const fetch = await bashCompletes("ociboot", "fetch", "--");
    expect(fetch).toContain("--ca-file");
    expect(fetch).not.toContain("--store-path");
  });

  it("register with zsh's completion system when sourced", async () => {
    const script = `autoload -U compinit; compinit -u -D; source ${scripts["zsh"]}; print -r -- \${_comps[ociboot]}`;
    const result = await run("zsh", ["-fc", script], { env: { HOME: work } });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("_ociboot\n");
  });

  it("complete commands, options and fixed option values in an interactive zsh", async () => {
    const complete = async (line: string) => {
      const capture = fileURLToPath(new URL("../harness/zsh-complete.zsh", import.meta.url));
      const result = await run("timeout", ["-k", "5", "20", "zsh", "-f", capture], {
        env: { HOME: work, SCRIPT: scripts["zsh"] as string, WORDS: line },
      });
      expect(result.code, result.stderr).toBe(0);
      return result.stdout.split("\n").map((entry) => entry.trim()).filter(Boolean);
    };
    expect(await complete("ociboot fe")).toEqual(["fetch"]);
    expect(await complete("ociboot fetch --ro")).toEqual(["--role"]);
    expect(await complete("ociboot fetch REF --role ")).toEqual(["kernel", "initrd", "rootfs", "squashfs", "uki", "iso", "cmdline", "executable"]);
    expect(await complete("ociboot --store-path s build --format ")).toEqual(["onmetal", "ironcore"]);
    expect(await complete("ociboot completion ")).toEqual(["bash", "zsh", "fish"]);
    const list = await complete("ociboot list --");
    expect(list).toContain("--store-path");
    expect(list).not.toContain("--ca-file");
  });

  it("complete commands and fixed values in fish", async () => {
    const complete = async (line: string) => {
      const result = await run("fish", ["--no-config", "-c", `source ${scripts["fish"]}; complete -C '${line}'`]);
      expect(result.code, result.stderr).toBe(0);
      return result.stdout.split("\n").filter(Boolean).map((entry) => entry.split("\t")[0]);
    };
    expect(await complete("ociboot dig")).toEqual(["digest"]);
    expect((await complete("ociboot build --format ")).sort()).toEqual(["ironcore", "onmetal"]);
    expect(await complete("ociboot fetch --role kernel,i")).toEqual(expect.arrayContaining(["kernel,initrd", "kernel,iso"]));
  });

  it("refuses an unknown shell with a usage error", async () => {
    const result = await runInProcess(["completion", "tcsh"], { cwd: work });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("see ociboot completion --help");
  });
});
