import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { VersionReport } from "../../src/cli/commands/version.ts";
import { run } from "../harness/commands.ts";
import { OCIBOOT_BINARY, ocibootUnderDeno } from "../e2e/ociboot-binary.ts";
import { runInProcess } from "./cli-context.ts";
import packageJson from "../../package.json" with { type: "json" };

const ROOT = join(import.meta.dirname, "..", "..");
const installedVersion = (name: string) => (JSON.parse(readFileSync(join(ROOT, "node_modules", name, "package.json"), "utf8")) as { version: string }).version;
const head = () => execFileSync("git", ["rev-parse", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
const expectedDependencies = () =>
  Object.fromEntries(Object.keys(packageJson.dependencies).sort().map((name) => [name, installedVersion(name)]));

describe("ociboot version", () => {
  it("reports the sources' version, commit, runtime, platform and installed dependency versions", async () => {
    const result = await runInProcess(["version", "--json"], { cwd: ROOT });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as VersionReport;
    expect(report).toEqual({
      name: "ociboot",
      version: packageJson.version,
      commit: head(),
      runtime: { name: "node", version: process.versions.node, embedded: false },
      platform: { os: "linux", architecture: process.arch === "x64" ? "amd64" : process.arch },
      dependencies: expectedDependencies(),
    });
  });

  it("prints the same facts as text for --version and version", async () => {
    const viaOption = await runInProcess(["--version"], { cwd: ROOT });
    const viaCommand = await runInProcess(["version"], { cwd: ROOT });
    expect(viaOption).toEqual(viaCommand);
    // Global options before it do not swallow it.
    expect(await runInProcess(["--debug", "-V"], { cwd: ROOT })).toEqual(viaCommand);
    const lines = viaOption.stdout.split("\n");
    expect(lines[0]).toBe(`ociboot ${packageJson.version}`);
    expect(lines).toContain(`commit:       ${head()}`);
    expect(lines).toContain(`runtime:      Node.js ${process.versions.node} (running the sources)`);
    expect(viaOption.stdout).toContain(`undici ${installedVersion("undici")}`);
  });

  it("carries the commit and dependency versions fixed at build time inside the executable", async () => {
    const result = await run(OCIBOOT_BINARY, ["version", "--json"], { cwd: "/", env: { PATH: "/nonexistent" } });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as VersionReport;
    // Built from this checkout, maybe with uncommitted edits (then marked -dirty).
    expect(report.commit).toMatch(new RegExp(`^${head()}(-dirty)?$`));
    expect(report.runtime).toEqual({ name: "node", version: process.versions.node, embedded: true });
    expect(report.dependencies).toEqual(expectedDependencies());
  });

  it("runs from the sources under Deno and says so", async () => {
    const result = await ocibootUnderDeno(["version", "--json"], { cwd: ROOT });
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as VersionReport;
    expect(report.runtime).toMatchObject({ name: "deno", embedded: false });
    expect(report.runtime.version).toMatch(/^2\./);
    expect(report.commit).toBe(head());
    expect(report.dependencies).toEqual(expectedDependencies());
  });
});
