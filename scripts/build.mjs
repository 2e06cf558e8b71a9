// Builds dist/ociboot: an esbuild CommonJS bundle injected into a copy of the node binary
// (Node single-executable application), so the result runs with no node_modules and no Node on PATH.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const bundle = join(dist, "ociboot.cjs");
const blob = join(dist, "ociboot.blob");
const seaConfig = join(dist, "sea-config.json");
const binary = join(dist, "ociboot");

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
const versionSource = readFileSync(join(root, "src", "version.ts"), "utf8");
if (!versionSource.includes(`"${pkg.version}"`)) {
  throw new Error(`src/version.ts does not match package.json version ${pkg.version}`);
}

mkdirSync(dist, { recursive: true });
await build({
  entryPoints: [join(root, "src", "main.ts")],
  outfile: bundle,
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  minify: true,
  legalComments: "none",
  logLevel: "warning",
  // jsonc-parser's `main` is a UMD wrapper whose require() calls esbuild cannot follow; its ESM
  // build is the same code in a form esbuild bundles.
  alias: { "jsonc-parser": join(root, "node_modules", "jsonc-parser", "lib", "esm", "main.js") },
});

writeFileSync(
  seaConfig,
  JSON.stringify({ main: bundle, output: blob, disableExperimentalSEAWarning: true, useCodeCache: true }),
);
execFileSync(process.execPath, ["--experimental-sea-config", seaConfig], { stdio: "inherit" });

rmSync(binary, { force: true });
copyFileSync(process.execPath, binary);
chmodSync(binary, 0o755);
const postject = join(root, "node_modules", "postject", "dist", "cli.js");
try {
  execFileSync(
    process.execPath,
    [postject, binary, "NODE_SEA_BLOB", blob, "--sentinel-fuse", "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
} catch (error) {
  // postject's harmless ELF section warnings are only worth showing when it fails.
  process.stderr.write(error.stderr ?? "");
  throw error;
}

const mb = (path) => (statSync(path).size / 1e6).toFixed(1);
console.log(`built ${binary} (${mb(binary)} MB; bundle ${mb(bundle)} MB)`);
