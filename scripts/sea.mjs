// Node single-executable application (SEA) steps shared by scripts/build.mjs (dev build on the
// machine's Node) and scripts/release.mjs (release executables on the pinned Node 24): bundle the
// sources once, make a blob with a given Node, inject it into a copy of a Node binary.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const packageJson = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));

// Node's documented fuse; the same string in every Node line that has SEA (20 to 24).
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/**
 * What `ociboot version` reports about the build, fixed when the bundle is made: the sources do
 * not know their commit or the installed dependency versions once they are inside an executable.
 */
export function buildInfo() {
  const versionSource = readFileSync(join(root, "src", "version.ts"), "utf8");
  if (!versionSource.includes(`"${packageJson.version}"`)) {
    throw new Error(`src/version.ts does not match package.json version ${packageJson.version}`);
  }
  const dependencies = {};
  for (const name of Object.keys(packageJson.dependencies ?? {}).sort()) {
    dependencies[name] = JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;
  }
  return { commit: gitCommit(), dependencies };
}

function gitCommit() {
  try {
    const commit = execFileSync("git", ["rev-parse", "HEAD"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() !== "";
    return dirty ? `${commit}-dirty` : commit;
  } catch {
    // A source tarball without .git: say so rather than fail the build.
    return "unknown";
  }
}

/** Bundles src/main.ts into one CommonJS file with the build info baked in. */
export async function bundleSources(outfile, { target = "node20" } = {}) {
  await build({
    entryPoints: [join(root, "src", "main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "cjs",
    target,
    minify: true,
    legalComments: "none",
    logLevel: "warning",
    // import.meta is empty in a CommonJS bundle anyway; only the source-run branch of
    // src/cli/commands/version.ts reads it, never taken once __OCIBOOT_BUILD__ is defined.
    define: { __OCIBOOT_BUILD__: JSON.stringify(buildInfo()), "import.meta.url": "undefined" },
    // jsonc-parser's `main` is a UMD wrapper whose require() calls esbuild cannot follow; its ESM
    // build is the same code in a form esbuild bundles.
    alias: { "jsonc-parser": join(root, "node_modules", "jsonc-parser", "lib", "esm", "main.js") },
  });
}

/**
 * Makes the SEA blob with `node` (which must be the Node version the blob will run on). The code
 * cache is V8 machine state for the architecture that made it, so it is on only when `sameArch`.
 */
export function makeBlob(node, bundle, blob, { sameArch }) {
  const config = `${blob}.json`;
  writeFileSync(
    config,
    JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: sameArch, useSnapshot: false }),
  );
  execFileSync(node, ["--experimental-sea-config", config], { stdio: ["ignore", "ignore", "inherit"], env: cleanNodeEnv() });
  rmSync(config);
}

/** Copies the Node binary `runtime` to `output` and injects `blob` into it. */
export function injectBlob(runtime, blob, output) {
  rmSync(output, { force: true });
  copyFileSync(runtime, output);
  chmodSync(output, 0o755);
  const postject = join(root, "node_modules", "postject", "dist", "cli.js");
  if (!existsSync(postject)) throw new Error(`${postject} is missing: run npm ci`);
  try {
    execFileSync(process.execPath, [postject, output, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE], {
      stdio: ["ignore", "ignore", "pipe"],
    });
  } catch (error) {
    // postject's harmless ELF section warnings are only worth showing when it fails.
    process.stderr.write(error.stderr ?? "");
    throw error;
  }
}

/** The environment minus Node options that would change how another Node makes a blob. */
export function cleanNodeEnv() {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  return env;
}
