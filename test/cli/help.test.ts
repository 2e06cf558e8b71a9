import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PLACEMENTS } from "../../src/cli/command-groups.ts";
import { runInProcess } from "./cli-context.ts";

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-help-"));
  await writeFile(join(work, "kernel"), "a kernel");
});
afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });

/** The command names the top-level help lists, by group heading. */
function groups(help: string): Map<string, string[]> {
  const result = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of help.split("\n")) {
    if (/^\S.*:$/.test(line)) {
      current = [];
      result.set(line, current);
    } else if (current !== undefined && /^ {2}\S/.test(line)) {
      current.push(line.trim().split(/[\s|]/)[0] as string);
    }
  }
  return result;
}

describe("help", () => {
  it("with no arguments: help on stderr, exit 2", async () => {
    const result = await cli();
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain("Usage: ociboot [options] [command]");
  });

  it("groups the commands by task and shows the three most common lines", async () => {
    const result = await cli("--help");
    expect(result.code).toBe(0);
    const listed = groups(result.stdout);
    expect(listed.get("Boot files:")).toEqual(expect.arrayContaining(["fetch", "tags", "manifest", "digest"]));
    expect(listed.get("Local store:")).toEqual(expect.arrayContaining(["build", "list", "tag", "inspect", "delete", "prune", "import"]));
    expect(listed.get("Transfer:")).toEqual(expect.arrayContaining(["copy", "push", "pull"]));
    expect(listed.get("Referrers:")).toEqual(["attach", "discover"]);
    expect(listed.get("Trust:")).toContain("verify");
    expect(listed.get("Registry login:")).toEqual(["login", "logout"]);
    expect(listed.get("Shell:")).toEqual(expect.arrayContaining(["completion", "help"]));
    expect(listed.get("Examples:")).toEqual(["ociboot", "ociboot", "ociboot"]);
    expect(result.stdout).toMatch(/^ {2}ociboot fetch .* -o \.\/boot/m);
  });

  it("gives every command at least one example under the one heading spelling", async () => {
    const commands = [...groups((await cli("--help")).stdout).entries()].filter(([heading]) => !/options|examples/i.test(heading));
    const names = commands.flatMap(([, list]) => list).filter((name) => name !== "help");
    expect(names.length).toBeGreaterThanOrEqual(23);
    for (const name of names) {
      const help = await cli(name, "--help");
      expect(help.code, name).toBe(0);
      expect(help.stdout, name).toMatch(/\nExamples:\n {2}\S/);
      expect(help.stdout, name).not.toMatch(/^Example:$/m);
    }
  });

  it("shows registry options only on commands that talk to a registry, and refuses them elsewhere", async () => {
    for (const [name, placement] of Object.entries(PLACEMENTS)) {
      const help = await cli(name, "--help");
      if (!help.stdout.startsWith(`Usage: ociboot ${name}`)) continue; // placed, but not in this build
      expect(/^ +--ca-file <file>/m.test(help.stdout), name).toBe(placement.options.includes("registry"));
      expect(/^ +--store-path <dir>/m.test(help.stdout), name).toBe(placement.options.includes("store"));
    }
    const refused = await cli("list", "--ca-file", "ca.pem");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("unknown option '--ca-file' (see ociboot list --help)");
    // Before the command name every shared option is accepted, as onmetal-image takes --store-path.
    expect((await cli("--store-path", "store", "list")).code).toBe(0);
  });

  it("points a usage error to the command's own help, and suggests the command meant", async () => {
    const missing = await cli("fetch", "127.0.0.1:1/x:y");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("(see ociboot fetch --help)");
    const refused = await cli("fetch", "oci:nowhere", "-o", "boot", "--role", "kernal");
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/Cannot use --role kernal: .*\(see ociboot fetch --help\)/);
    const typo = await cli("fech", "x");
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("unknown command 'fech' (Did you mean fetch?) (see ociboot --help)");
    const helpTypo = await cli("help", "fech");
    expect(helpTypo.code).toBe(2);
    expect(helpTypo.stderr).toContain("unknown command 'fech' (Did you mean fetch?)");
    expect(helpTypo.stderr).not.toContain("Usage:");
    const helpKnown = await cli("help", "fetch");
    expect(helpKnown.code).toBe(0);
    expect(helpKnown.stdout).toContain("Usage: ociboot fetch");
    const option = await cli("fetch", "x", "-o", "d", "--jsn");
    expect(option.stderr).toContain("(Did you mean --json?)");
  });

  it("offers --json on every command that prints a result, and the exit code does not change with it", async () => {
    const names = [...groups((await cli("--help")).stdout).entries()]
      .filter(([heading]) => !/options|examples/i.test(heading))
      .flatMap(([, list]) => list)
      .filter((name) => name !== "help" && name !== "completion");
    for (const name of names) expect((await cli(name, "--help")).stdout, name).toMatch(/^ {2}--json +\S/m);

    for (const argv of [["--store-path", "store", "delete", "no/such:image"], ["logout", "nowhere.example"], ["tags", "oci:missing-store"], ["digest", "oci:missing-store:x"]]) {
      const text = await cli(...argv);
      const json = await cli(...argv, "--json");
      expect(text.code, argv.join(" ")).not.toBe(0);
      expect(json.code, argv.join(" ")).toBe(text.code);
    }
    const built = await cli("--store-path", "store", "build", "--kernel-file", "kernel", "--initramfs-file", "kernel", "--rootfs-file", "kernel", "--tag", "example.com/a:1", "--json");
    expect(built.code, built.stderr).toBe(0);
    expect(JSON.parse(built.stdout)).toMatchObject({ reference: "example.com/a:1", digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    const tagged = await cli("--store-path", "store", "tag", "example.com/a:1", "example.com/a:2", "--json");
    expect(JSON.parse(tagged.stdout)).toEqual({ reference: "example.com/a:2", digest: JSON.parse(built.stdout).digest });
  });
});
