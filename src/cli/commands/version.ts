import { readFile } from "node:fs/promises";
import process from "node:process";
import { Command } from "@commander-js/extra-typings";
import { platformFromNode } from "../../oci/platform.ts";
import type { Platform } from "../../oci/descriptor.ts";
import { VERSION } from "../../version.ts";
import type { CliContext } from "../context.ts";

/** What the build fixed (scripts/sea.mjs defines it); absent when the sources run directly. */
interface BuildInfo {
  commit: string;
  dependencies: Record<string, string>;
}
declare const __OCIBOOT_BUILD__: BuildInfo | undefined;

/** Everything a rescue-shell operator needs to tell which ociboot they run (docs/releases.md). */
export interface VersionReport {
  name: "ociboot";
  version: string;
  /** Full git commit; `-dirty` when built from uncommitted changes, `unknown` without git. */
  commit: string;
  runtime: {
    name: "node" | "deno";
    version: string;
    /** True in a single executable, where the runtime is part of the file. */
    embedded: boolean;
  };
  platform: Platform;
  /** Exact versions of the npm packages ociboot runs with. */
  dependencies: Record<string, string>;
}

/** `ociboot version [--json]`, also what `ociboot --version` prints. */
export function versionCommand(context: CliContext) {
  return new Command("version")
    .description("print ociboot's version and commit, the runtime it runs on, the platform and dependency versions")
    .option("--json", "print a JSON report on stdout")
    .addHelpText("after", "\nExamples:\n  ociboot version\n  ociboot version --json\n  ociboot --version")
    .action(async (options) => {
      const report = await versionReport();
      context.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatVersionReport(report));
    });
}

export function formatVersionReport(report: VersionReport): string {
  const runtimeName = report.runtime.name === "deno" ? "Deno" : "Node.js";
  const where = report.runtime.embedded ? "embedded in this executable" : "running the sources";
  const dependencies = Object.entries(report.dependencies).map(([name, version]) => `${name} ${version}`);
  return [
    `ociboot ${report.version}`,
    `commit:       ${report.commit}`,
    `runtime:      ${runtimeName} ${report.runtime.version} (${where})`,
    `platform:     ${report.platform.os}/${report.platform.architecture}${report.platform.variant ? `/${report.platform.variant}` : ""}`,
    `dependencies: ${dependencies.length > 0 ? dependencies.join(", ") : "unknown"}`,
    "",
  ].join("\n");
}

async function versionReport(): Promise<VersionReport> {
  const built = typeof __OCIBOOT_BUILD__ === "undefined" ? undefined : __OCIBOOT_BUILD__;
  const deno = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
  const { commit, dependencies } = built ?? (await sourceBuildInfo());
  return {
    name: "ociboot",
    version: VERSION,
    commit,
    runtime: deno
      ? { name: "deno", version: deno.version.deno, embedded: false }
      : { name: "node", version: process.versions.node, embedded: built !== undefined },
    platform: platformFromNode(process.arch, process.platform),
    dependencies,
  };
}

/** Running from a checkout: the commit from git, the versions from the installed node_modules. */
async function sourceBuildInfo(): Promise<BuildInfo> {
  const root = new URL("../../../", import.meta.url);
  const packageJson = JSON.parse(await readFile(new URL("package.json", root), "utf8")) as { dependencies?: Record<string, string> };
  const dependencies: Record<string, string> = {};
  for (const name of Object.keys(packageJson.dependencies ?? {}).sort()) {
    try {
      const installed = JSON.parse(await readFile(new URL(`node_modules/${name}/package.json`, root), "utf8")) as { version?: string };
      dependencies[name] = installed.version ?? "unknown";
    } catch {
      dependencies[name] = "not installed";
    }
  }
  return { commit: await gitCommit(root), dependencies };
}

async function gitCommit(root: URL): Promise<string> {
  // Loaded here: only a run from the sources asks git, and every command's start pays for imports.
  const { execFile } = await import("node:child_process");
  return new Promise((resolve) => {
    execFile("git", ["-C", root.pathname, "rev-parse", "HEAD"], { timeout: 5_000 }, (error, stdout) => {
      resolve(error ? "unknown" : stdout.trim());
    });
  });
}
