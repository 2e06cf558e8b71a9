import { copyFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { OCIBOOT_BINARY } from "./ociboot-binary.ts";
import packageJson from "../../package.json" with { type: "json" };

describe("the single executable", () => {
  let lonely: string;
  let copy: string;
  beforeAll(async () => {
    // A copy far from the repository: no node_modules beside it, no Node on PATH.
    lonely = await mkdtemp(join(tmpdir(), "ociboot-binary-"));
    copy = join(lonely, "ociboot");
    await copyFile(OCIBOOT_BINARY, copy);
    await run("chmod", ["+x", copy]);
  });
  afterAll(async () => {
    await rm(lonely, { recursive: true, force: true });
  });

  it("prints its version from / with no Node on PATH", async () => {
    const result = await run(copy, ["--version"], { cwd: "/", env: { PATH: "/nonexistent", NODE_OPTIONS: undefined } });
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout.split("\n")[0]).toBe(`ociboot ${packageJson.version}`);
    expect(result.stdout).toContain(`runtime:      Node.js ${process.versions.node} (embedded in this executable)`);
  });

  it("prints help listing the commands", async () => {
    const result = await run(copy, ["--help"], { cwd: "/", env: { PATH: "/nonexistent" } });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/Usage: ociboot/);
    expect(result.stdout).toMatch(/\bfetch\b/);
  });

  it("exits with the usage code and one clear message on a bad command line", async () => {
    const result = await run(copy, ["fetch"], { cwd: "/", env: { PATH: "/nonexistent" } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/^ociboot: required option '-o, --output <dir>' not specified \(see ociboot fetch --help\)\n$/);
  });
});
