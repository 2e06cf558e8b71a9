#!/usr/bin/env node
// `npm run bench`: how fast `ociboot fetch` brings a large boot image from a local registry,
// side by side with skopeo, curl (the physical limit: download and write, no verification) and
// the shell user's verified pipeline `curl | tee | openssl dgst`. Not a test: it prints figures.
//
//   npm run bench -- --archives [...]   (archive export/import/fetch rows: scripts/bench-archives.mjs)
//   npm run bench -- [--size 1G[,4G]] [--runs 5] [--dir DIR] [--ociboot BIN] [--baseline BIN]
//   (--baseline adds another ociboot build, e.g. of an older commit, as a fifth contender)
//   (or OCIBOOT_BENCH_SIZES=1G,4G OCIBOOT_BENCH_RUNS=5)
//   npm run bench -- --trust [--runs 15] [--size 4M]: what `--key` adds to `fetch` and to an
//   offline `verify --dir` of a small image, signed here cosign's way without ociboot's signer
//   (figures in docs/trust.md)
//
// Needs: dist/ociboot (`npm run build`), docker-registry, skopeo, curl, openssl; GNU time
// (/usr/bin/time) for peak RSS, else /proc is polled.
import { spawn } from "node:child_process";
import { createHash, randomBytes, randomFillSync, sign } from "node:crypto";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, open, rename, rm, stat, writeFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let ociboot = join(root, "dist", "ociboot");
const GNU_TIME = "/usr/bin/time";
const REPOSITORY = "bench/boot";
const MEDIA_TYPES = {
  manifest: "application/vnd.oci.image.manifest.v1+json",
  index: "application/vnd.oci.image.index.v1+json",
  config: "application/vnd.onmetal.image.config.v1alpha1+json",
  rootfs: "application/vnd.onmetal.image.rootfs.v1alpha1.rootfs",
};

// `--archives` runs the archive rows instead (scripts/bench-archives.mjs), with its own options.
const archivesMode = process.argv.includes("--archives");
const options = archivesMode ? undefined : parseArguments(process.argv.slice(2));
// Node 20 parses the bundle NODE_EXTRA_CA_CERTS names (and builds its whole root store) at every
// start, before any code of ours runs: ~35 ms here, where the environment sets it for every tool.
// It is a Node setting, not an ociboot one, so every contender runs without it; when it is set,
// "ociboot-ca" runs ociboot with it as well, so both figures are in the report.
const EXTRA_CA_VARIABLE = "NODE_EXTRA_CA_CERTS";
const extraCaCerts = process.env[EXTRA_CA_VARIABLE];
const contenderEnv = Object.fromEntries(Object.entries(process.env).filter(([name]) => name !== EXTRA_CA_VARIABLE));
const cleanups = [];
let cleaning;

async function cleanUp() {
  cleaning ??= (async () => {
    for (const step of cleanups.reverse()) await step().catch((error) => console.error(`cleanup: ${error.message}`));
  })();
  await cleaning;
}

for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.once(signal, () => {
    console.error(`\n${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

try {
  if (archivesMode) {
    const { benchArchives } = await import("./bench-archives.mjs");
    // The registry for its "fetch from registry" row is started as this script starts one, and stopped with the rest.
    process.exitCode = await benchArchives(process.argv.slice(2).filter((argument) => argument !== "--archives"), { startRegistry, env: contenderEnv });
  } else {
    await main();
  }
} catch (error) {
  console.error(`bench failed: ${error.stack ?? error}`);
  process.exitCode = 1;
} finally {
  await cleanUp();
}

async function main() {
  await checkTools();
  if (options.trust) return trustBench();
  const peakRss = existsSync(GNU_TIME) && (await gnuTimeWorks()) ? "gnu-time" : "proc-poll";
  const work = await mkdtemp(join(options.dir ?? tmpdir(), "ociboot-bench-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));

  const registry = await startRegistry(join(work, "registry"));

  console.log(header(peakRss));
  const summaries = [];
  for (const size of options.sizes) {
    const image = await publishImage(work, registry.host, size);
    const outputs = join(work, "out");
    const commands = benchCommands(registry.host, image, outputs);
    // Warm the page cache with the registry's copy of the blob, so every contender reads from memory.
    for (let i = 0; i < 2; i++) await run("curl", ["-s", "-f", "-o", "/dev/null", image.blobUrl]);

    const samples = new Map(commands.map((command) => [command.name, []]));
    for (let round = 0; round < options.runs; round++) {
      // Rotating the order spreads drift (other load, page cache, disk write-back) over everyone.
      const order = rotate(commands, round);
      for (const command of order) {
        await rm(outputs, { recursive: true, force: true });
        await mkdir(outputs, { recursive: true });
        // Dirty pages of the previous contender must not be written back on the next one's time.
        await run("sync", []);
        const sample = await measure(command.argv, peakRss, command.env ?? contenderEnv);
        await command.check(sample);
        samples.get(command.name).push(sample);
        process.stderr.write(`  ${formatSize(size)} run ${round + 1}/${options.runs} ${command.name.padEnd(9)} ${sample.seconds.toFixed(2)} s  ${sample.peakRssMb.toFixed(0)} MB\n`);
      }
    }
    await rm(outputs, { recursive: true, force: true });
    const summary = summarize(size, samples);
    summaries.push(summary);
    console.log(report(summary));
    // The registry's copy goes too: 4 GiB blobs should not pile up across sizes.
    await rm(join(registry.root, "docker"), { recursive: true, force: true });
  }
  console.log(`load average after: ${loadavg().map((value) => value.toFixed(2)).join(" ")}`);
}

/**
 * `--trust`: a small image signed cosign's way by openssl's key and node:crypto (not by `ociboot
 * sign`), then `fetch` without and with `--key`, and an offline `verify --dir` without and with
 * `--key`, alternately, order rotated, a fresh output folder for every fetch.
 */
async function trustBench() {
  const work = await mkdtemp(join(options.dir ?? tmpdir(), "ociboot-bench-trust-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  const registry = await startRegistry(join(work, "registry"));
  const size = options.sizes[0];
  const image = await publishImage(work, registry.host, size);
  // RSA-4096 behind a self-signed certificate: what Garden Linux publishes and signs with.
  const keyFile = join(work, "release.key");
  const certificate = join(work, "release.crt");
  await run("openssl", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096", "-out", keyFile]);
  await run("openssl", ["req", "-x509", "-new", "-key", keyFile, "-subj", "/CN=bench", "-days", "1", "-out", certificate]);
  await publishSignature(work, registry.host, image.manifestDigest, readFileSync(keyFile));

  console.log(header());
  console.log(`image: ${image.reference} (${image.manifestDigest}, rootfs ${formatSize(size)}); key: RSA-4096 certificate`);
  const signedDir = join(work, "signed");
  await run(ociboot, ["fetch", image.reference, "-o", signedDir, "--quiet", "--key", certificate]);
  const outputs = join(work, "out");
  const pairs = [
    ["fetch", (extra) => [ociboot, "fetch", image.reference, "-o", outputs, "--quiet", ...extra]],
    ["verify --dir", (extra) => [ociboot, "verify", "--dir", signedDir, ...extra]],
  ];
  const lines = [];
  for (const [label, argv] of pairs) {
    // verify --dir is the offline check: with the registry gone it cannot lean on it.
    if (label === "verify --dir") await registry.stop();
    const commands = [
      { name: "without", argv: argv([]) },
      { name: "with", argv: argv(["--key", certificate]) },
    ];
    const samples = { without: [], with: [] };
    for (let round = 0; round < options.runs; round++) {
      for (const command of rotate(commands, round)) {
        await rm(outputs, { recursive: true, force: true });
        await run("sync", []);
        const started = performance.now();
        await run(command.argv[0], command.argv.slice(1));
        const ms = performance.now() - started;
        samples[command.name].push(ms);
        process.stderr.write(`  ${label} run ${round + 1}/${options.runs} ${command.name.padEnd(7)} ${ms.toFixed(0)} ms\n`);
      }
    }
    const [without, withKey] = [median(samples.without), median(samples.with)];
    const range = (list) => `${Math.min(...list).toFixed(0)}–${Math.max(...list).toFixed(0)}`;
    lines.push(
      `  ${label.padEnd(13)} ${`${without.toFixed(0)} ms`.padStart(8)} ${range(samples.without).padStart(10)} ${`${withKey.toFixed(0)} ms`.padStart(8)} ${range(samples.with).padStart(10)} ${`${withKey - without >= 0 ? "+" : ""}${(withKey - without).toFixed(0)} ms`.padStart(8)}`,
    );
  }
  console.log(`\nmedians of ${options.runs} (range min–max): without --key, with --key, added (target: under 50 ms)`);
  console.log(`  ${"".padEnd(13)} ${"without".padStart(8)} ${"range".padStart(10)} ${"with".padStart(8)} ${"range".padStart(10)} ${"added".padStart(8)}`);
  console.log(lines.join("\n"));
  console.log(`load average after: ${loadavg().map((value) => value.toFixed(2)).join(" ")}`);
}

/**
 * Pushes cosign's `.sig` manifest for `digest`: one layer, the simple-signing payload written out
 * byte for byte as cosign (Go) writes it, its RSA PKCS#1 v1.5 SHA-256 signature in the annotation.
 */
async function publishSignature(work, host, digest, privateKey) {
  const layout = join(work, "sig-layout");
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const payload = Buffer.from(
    `{"critical":{"identity":{"docker-reference":"${host}/${REPOSITORY}"},"image":{"docker-manifest-digest":"${digest}"},"type":"cosign container image signature"},"optional":null}`,
  );
  const layer = await writeBlob(blobs, "application/vnd.dev.cosign.simplesigning.v1+json", payload);
  const config = await writeBlob(blobs, "application/vnd.oci.image.config.v1+json", Buffer.from('{"architecture":"","os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'));
  const annotations = { "dev.cosignproject.cosign/signature": sign("sha256", payload, privateKey).toString("base64") };
  const manifest = await writeBlob(blobs, MEDIA_TYPES.manifest, Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.manifest, config, layers: [{ ...layer, annotations }] })));
  const tag = `sha256-${digest.slice("sha256:".length)}.sig`;
  await pushLayout(layout, manifest, tag, `${host}/${REPOSITORY}:${tag}`);
}

function parseArguments(argv) {
  const parsed = {
    sizes: process.env.OCIBOOT_BENCH_SIZES?.split(",").map(parseSize),
    runs: Number(process.env.OCIBOOT_BENCH_RUNS ?? Number.NaN),
    dir: process.env.OCIBOOT_BENCH_DIR,
    binary: process.env.OCIBOOT_BENCH_BINARY,
    baseline: process.env.OCIBOOT_BENCH_BASELINE,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === "--size") parsed.sizes = value().split(",").map(parseSize);
    else if (flag === "--runs") parsed.runs = Number(value());
    else if (flag === "--dir") parsed.dir = value();
    // Another build (say, of an older commit) to compare against.
    else if (flag === "--ociboot") parsed.binary = value();
    else if (flag === "--baseline") parsed.baseline = value();
    else if (flag === "--trust") parsed.trust = true;
    else if (flag === "--help" || flag === "-h") usage();
    else usage(`unknown option ${flag}`);
  }
  // A small fetch varies by tens of ms on a shared machine: the trust bench needs more rounds.
  if (Number.isNaN(parsed.runs)) parsed.runs = parsed.trust ? 15 : 5;
  parsed.sizes ??= [parsed.trust ? 4 * 2 ** 20 : 2 ** 30];
  if (!Number.isInteger(parsed.runs) || parsed.runs < 1) usage("--runs must be a positive integer");
  if (parsed.binary) ociboot = parsed.binary;
  return parsed;
}

function usage(problem) {
  if (problem) console.error(`bench: ${problem}`);
  console.error("usage: npm run bench -- [--size 1G[,4G]] [--runs N] [--dir TEMP_PARENT] [--ociboot BINARY] [--baseline BINARY] [--trust]");
  process.exit(problem ? 2 : 0);
}

function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (!match) usage(`cannot read size "${text}" (e.g. 1G, 512M, 4GiB)`);
  const units = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  return Math.round(Number(match[1]) * units[match[2].toUpperCase()]);
}

async function checkTools() {
  if (!existsSync(ociboot)) throw new Error(`${ociboot} is missing: run npm run build first`);
  for (const tool of ["docker-registry", "skopeo", "curl", "openssl", "bash", "sync"]) {
    const found = (process.env.PATH ?? "").split(":").some((directory) => existsSync(join(directory, tool)));
    if (!found) throw new Error(`${tool} is not on PATH`);
  }
}

async function gnuTimeWorks() {
  const result = await run(GNU_TIME, ["-f", "%M", "true"], { allowFailure: true });
  return result.code === 0 && /^\d+\s*$/m.test(result.stderr);
}

/** Starts `docker-registry serve` with filesystem storage on a free loopback port. */
async function startRegistry(directory) {
  const storage = join(directory, "storage");
  await mkdir(storage, { recursive: true });
  const config = {
    version: "0.1",
    // "info": the port it picked is only named in the info-level "listening on" line.
    log: { level: "info", formatter: "text" },
    storage: { filesystem: { rootdirectory: storage }, delete: { enabled: true }, maintenance: { uploadpurging: { enabled: false } } },
    http: { addr: "127.0.0.1:0", secret: randomBytes(16).toString("hex") },
  };
  // JSON is YAML.
  const configFile = join(directory, "config.yml");
  await writeFile(configFile, JSON.stringify(config));
  const env = { ...process.env };
  // REGISTRY_* variables override the config file; none from the outside may leak in.
  for (const name of Object.keys(env)) if (name.startsWith("REGISTRY_")) delete env[name];
  const child = spawn("docker-registry", ["serve", configFile], { env, stdio: ["ignore", "pipe", "pipe"] });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    await exited;
    clearTimeout(timer);
  };
  cleanups.push(stop);
  let log = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`docker-registry did not start listening:\n${log}`)), 15_000);
    const onData = (chunk) => {
      log = (log + chunk.toString()).slice(-16_384);
      const match = /listening on [0-9.]+:(\d+)/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.once("error", (error) => reject(new Error(`Cannot start docker-registry: ${error.message}`)));
    child.once("exit", (code, signal) => reject(new Error(`docker-registry exited (${code ?? signal}):\n${log}`)));
  });
  // Keep draining its output so a chatty registry never blocks on a full pipe.
  child.stdout.resume();
  child.stderr.resume();
  const host = `127.0.0.1:${port}`;
  for (let attempt = 0; ; attempt++) {
    const response = await fetch(`http://${host}/v2/`).catch(() => undefined);
    if (response?.status === 200) break;
    if (attempt > 100) throw new Error("docker-registry does not answer GET /v2/");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return { host, root: storage, stop };
}

/**
 * Publishes a single-layer onmetal boot image (config with a command line, one rootfs layer of
 * `size` random bytes) through an OCI layout and `skopeo copy`, digest-preserving.
 */
async function publishImage(work, host, size) {
  const layout = join(work, "layout");
  const blobs = join(layout, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const started = performance.now();
  const rootfs = await writeRandomBlob(blobs, size);
  const config = await writeBlob(blobs, MEDIA_TYPES.config, Buffer.from(JSON.stringify({ commandLine: "console=ttyS0 root=/dev/ram0" })));
  // onmetal-image writes its manifests without a mediaType field.
  const manifest = await writeBlob(blobs, MEDIA_TYPES.manifest, Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [{ ...rootfs, mediaType: MEDIA_TYPES.rootfs }] })));
  const tag = `bench-${formatSize(size).replace(/\s+/g, "")}`;
  const reference = `${host}/${REPOSITORY}:${tag}`;
  await pushLayout(layout, manifest, tag, reference);
  process.stderr.write(`published ${reference} (rootfs ${formatSize(size)}, ${rootfs.digest}) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
  return { reference, size, digest: rootfs.digest, manifestDigest: manifest.digest, blobUrl: `http://${host}/v2/${REPOSITORY}/blobs/${rootfs.digest}` };
}

/** Tags `manifest` (already in the layout's blobs) and copies it to `reference` with skopeo, digest-preserving; removes the layout. */
async function pushLayout(layout, manifest, tag, reference) {
  await writeFile(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(layout, "index.json"),
    JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.index, manifests: [{ ...manifest, annotations: { "org.opencontainers.image.ref.name": tag } }] }),
  );
  await run("skopeo", ["copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false", `oci:${layout}:${tag}`, `docker://${reference}`]);
  await rm(layout, { recursive: true, force: true });
}

async function writeRandomBlob(directory, size) {
  const temporary = join(directory, "random.tmp");
  const hash = createHash("sha256");
  const chunk = Buffer.alloc(Math.min(size, 4 * 1024 * 1024));
  const handle = await open(temporary, "w");
  try {
    for (let remaining = size; remaining > 0; ) {
      const piece = chunk.subarray(0, Math.min(chunk.length, remaining));
      randomFillSync(piece);
      hash.update(piece);
      await handle.write(piece);
      remaining -= piece.length;
    }
  } finally {
    await handle.close();
  }
  const hex = hash.digest("hex");
  await rename(temporary, join(directory, hex));
  return { digest: `sha256:${hex}`, size };
}

async function writeBlob(directory, mediaType, bytes) {
  const hex = createHash("sha256").update(bytes).digest("hex");
  await writeFile(join(directory, hex), bytes);
  return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
}

function benchCommands(host, image, outputs) {
  const file = join(outputs, "rootfs");
  const expectFile = async (path) => {
    const info = await stat(path);
    if (info.size !== image.size) throw new Error(`${path} has ${info.size} bytes, expected ${image.size}`);
  };
  const baseline = options.baseline
    ? [{ name: "baseline", argv: [options.baseline, "fetch", image.reference, "-o", outputs, "--quiet"], check: () => expectFile(file) }]
    : [];
  const withExtraCa = extraCaCerts
    ? [{ name: "ociboot-ca", argv: [ociboot, "fetch", image.reference, "-o", outputs, "--quiet"], env: process.env, check: () => expectFile(file) }]
    : [];
  return [
    ...baseline,
    {
      name: "ociboot",
      argv: [ociboot, "fetch", image.reference, "-o", outputs, "--quiet"],
      check: () => expectFile(file),
    },
    ...withExtraCa,
    {
      name: "skopeo",
      argv: ["skopeo", "copy", "--quiet", "--src-tls-verify=false", `docker://${image.reference}`, `oci:${join(outputs, "layout")}`],
      check: () => expectFile(join(outputs, "layout", "blobs", "sha256", image.digest.slice("sha256:".length))),
    },
    {
      name: "curl -o",
      argv: ["curl", "-s", "-f", "-o", file, image.blobUrl],
      check: () => expectFile(file),
    },
    {
      name: "pipeline",
      // The URL and path are ours (no shell metacharacters), so plain interpolation is safe.
      argv: ["bash", "-c", `set -o pipefail; curl -s -f '${image.blobUrl}' | tee '${file}' | openssl dgst -sha256`],
      check: async (sample) => {
        await expectFile(file);
        if (!sample.stdout.includes(image.digest.slice("sha256:".length))) throw new Error(`pipeline printed ${sample.stdout.trim()}`);
      },
    },
  ];
}

/** Runs one contender; wall time from here, peak RSS from GNU time (largest single process) or /proc polling. */
async function measure(argv, peakRss, env) {
  const timeFile = join(tmpdir(), `ociboot-bench-time-${process.pid}`);
  // CPU (user + system, of the whole process tree) says how much of the 2 cores a contender needs.
  const wrapped = peakRss === "gnu-time" ? [GNU_TIME, "-f", "%M %U %S", "-o", timeFile, ...argv] : argv;
  const started = performance.now();
  const result = await run(wrapped[0], wrapped.slice(1), { pollRss: peakRss === "proc-poll", env });
  const seconds = (performance.now() - started) / 1000;
  let peakKb = result.peakKb;
  let cpuSeconds = Number.NaN;
  if (peakRss === "gnu-time") {
    const [rss = "0", user = "NaN", system = "NaN"] = (readFileSync(timeFile, "utf8").trim().split("\n").at(-1) ?? "").split(" ");
    peakKb = Number(rss);
    cpuSeconds = Number(user) + Number(system);
    await rm(timeFile, { force: true });
  }
  return { seconds, cpuSeconds, peakRssMb: peakKb / 1024, stdout: result.stdout };
}

/** Spawns a command and collects its output; fails on a non-zero exit unless allowed. */
function run(command, args, { allowFailure = false, pollRss = false, env = contenderEnv } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
    let stdout = "";
    let stderr = "";
    let peakKb = 0;
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    const poller = pollRss ? setInterval(() => (peakKb = Math.max(peakKb, treeHighWaterKb(child.pid))), 10) : undefined;
    child.once("error", (error) => {
      clearInterval(poller);
      reject(new Error(`Cannot run ${command}: ${error.message}`));
    });
    child.once("close", (code, signal) => {
      clearInterval(poller);
      if ((code !== 0 || signal) && !allowFailure) {
        reject(new Error(`${command} ${args.join(" ")} failed (${code ?? signal}):\n${stderr.slice(-4000)}`));
      } else {
        resolve({ code, stdout, stderr, peakKb });
      }
    });
  });
}

/** Largest VmHWM among a process and its descendants (sampled; misses very short-lived peaks). */
function treeHighWaterKb(pid) {
  let peak = 0;
  const children = new Map();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(Number(entry));
    } catch {
      // The process exited meanwhile.
    }
  }
  const pending = [pid];
  while (pending.length > 0) {
    const current = pending.pop();
    try {
      const match = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${current}/status`, "utf8"));
      if (match) peak = Math.max(peak, Number(match[1]));
    } catch {
      // Exited.
    }
    pending.push(...(children.get(current) ?? []));
  }
  return peak;
}

function rotate(list, by) {
  const shift = by % list.length;
  return [...list.slice(shift), ...list.slice(0, shift)];
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function summarize(size, samples) {
  const rows = new Map();
  for (const [name, list] of samples) {
    const seconds = list.map((sample) => sample.seconds);
    const rss = list.map((sample) => sample.peakRssMb);
    const cpu = median(list.map((sample) => sample.cpuSeconds));
    rows.set(name, { median: median(seconds), min: Math.min(...seconds), max: Math.max(...seconds), cpu, peakRssMb: Math.max(...rss) });
  }
  return { size, rows };
}

function header(peakRss) {
  const cpu = cpus();
  return [
    `ociboot bench — ${new Date().toISOString()}`,
    `machine: ${cpu.length} cores (${cpu[0]?.model ?? "unknown CPU"}), Node ${process.version}, load average ${loadavg().map((value) => value.toFixed(2)).join(" ")}`,
    `ociboot: ${ociboot}${options.baseline ? `; baseline: ${options.baseline}` : ""}`,
    `environment: ${extraCaCerts ? `${EXTRA_CA_VARIABLE} is set; every contender runs without it${peakRss ? `, "ociboot-ca" is ociboot with it` : ""}` : `${EXTRA_CA_VARIABLE} is not set`}`,
    peakRss
      ? `runs: ${options.runs} per contender, order rotated each round, page cache warm; peak RSS via ${peakRss === "gnu-time" ? "GNU time (largest single process of a pipeline)" : "/proc VmHWM polling"}`
      : `runs: ${options.runs} per command, without/with --key alternating, order rotated each round, fresh output folder, sync before each; wall time of the process`,
  ].join("\n");
}

function report({ size, rows }) {
  const lines = [``, `blob ${formatSize(size)}:`, `  ${"contender".padEnd(10)} ${"median".padStart(8)} ${"min".padStart(7)} ${"max".padStart(7)} ${"GB/s".padStart(6)} ${"CPU".padStart(7)} ${"peak RSS".padStart(9)}`];
  for (const [name, row] of rows) {
    lines.push(
      `  ${name.padEnd(10)} ${`${row.median.toFixed(2)} s`.padStart(8)} ${`${row.min.toFixed(2)}`.padStart(7)} ${`${row.max.toFixed(2)}`.padStart(7)} ${(size / row.median / 1e9).toFixed(2).padStart(6)} ${(Number.isNaN(row.cpu) ? "–" : `${row.cpu.toFixed(2)} s`).padStart(7)} ${`${row.peakRssMb.toFixed(0)} MB`.padStart(9)}`,
    );
  }
  const of = (name) => rows.get(name).median;
  const ratio = (a, b) => (of(a) / of(b)).toFixed(2);
  lines.push(
    `  ociboot / curl -o:   ${ratio("ociboot", "curl -o")}×  (target ≤ 1.30)`,
    `  skopeo / ociboot:    ${ratio("skopeo", "ociboot")}×  (target ≥ 2.50)`,
    `  pipeline / ociboot:  ${ratio("pipeline", "ociboot")}×`,
    `  ociboot peak RSS:    ${rows.get("ociboot").peakRssMb.toFixed(0)} MB  (target < 100)`,
  );
  if (rows.has("ociboot-ca")) lines.push(`  ociboot-ca / curl -o: ${ratio("ociboot-ca", "curl -o")}×  (with ${EXTRA_CA_VARIABLE}, as this environment sets it)`);
  if (rows.has("baseline")) lines.push(`  baseline / ociboot:  ${ratio("baseline", "ociboot")}×`);
  return lines.join("\n");
}

function formatSize(bytes) {
  for (const [unit, scale] of [["GiB", 2 ** 30], ["MiB", 2 ** 20], ["KiB", 2 ** 10]]) {
    if (bytes >= scale && bytes % (scale / 4) === 0) return `${bytes / scale} ${unit}`;
  }
  return `${bytes} B`;
}
