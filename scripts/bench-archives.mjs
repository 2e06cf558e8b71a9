// `npm run bench -- --archives`: ociboot's archive work side by side with the plain tools on the
// same content, in one run (docs/archives.md):
//   export to .tar.xz / .tar.gz       against  tar -c DIR | xz -T0 -N  /  tar -c DIR | gzip -N
//   import of .tar.xz (system xz)     against  xz -d < A | tar -x
//   import of .tar.xz (WebAssembly)   against  xz -d < A | tar -x
//   import of .tar.gz / .tar          against  gzip -d < A | tar -x  /  tar -x < A
//   fetch oci-archive:A.tar.xz        against  xz -d < A | tar -x
//   fetch from a registry (same image, docker-registry on loopback), against the same baseline
// Not a test: it prints figures (median seconds of --runs, peak RSS by GNU time, ratio).
//
//   npm run bench -- --archives [--size 300M] [--runs 3] [--level 1] [--dir DIR] [--ociboot BIN] [--only ROW_REGEX]
//
// Needs dist/ociboot (`npm run build`), xz, gzip, GNU tar, /usr/bin/time, docker-registry.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const TAG = "bench.local/boot:archive";
/** Rows whose first pair both took less than this run at least SHORT_ROW_RUNS times. */
const SHORT_ROW_SECONDS = 2;
const SHORT_ROW_RUNS = 9;

/** The environment every command runs in (bench.mjs's: without NODE_EXTRA_CA_CERTS, docs/performance.md). */
let commandEnv = process.env;

/**
 * Runs the archive benchmark with the arguments after `--archives`; resolves to the exit code.
 * `startRegistry(directory)` (bench.mjs's) gives `{ host }` of a running docker-registry; `env` is
 * the environment of every contender.
 */
export async function benchArchives(argv, { startRegistry, env }) {
  const options = parseArguments(argv);
  if (env) commandEnv = env;
  const ociboot = options.binary ?? join(root, "dist", "ociboot");
  const work = await mkdtemp(join(options.dir ?? tmpdir(), "ociboot-bench-archives-"));
  let registry;
  try {
    const store = join(work, "store");
    await makeContent(work, options.size);
    await run(ociboot, ["-q", "--store-path", store, "build", "--rootfs-file", join(work, "rootfs"), "--initramfs-file", join(work, "initrd"), "--kernel-file", join(work, "vmlinuz"), "--tag", TAG]);
    // The layout as a folder, for the baselines: the same blobs, oci-layout and index.json.
    const plain = join(work, "A.tar");
    await run(ociboot, ["-q", "--store-path", store, "copy", `oci:${store}:${TAG}`, `oci-archive:${plain}`]);
    const folder = join(work, "layout");
    await mkdir(folder);
    await run("tar", ["-xf", plain, "-C", folder]);
    // The same image in a registry, for fetch from an archive against fetch from a registry.
    registry = await startRegistry(join(work, "registry"));
    const published = `${registry.host}/bench/boot:archive`;
    await run(ociboot, ["-q", "--store-path", store, "copy", `oci:${store}:${TAG}`, published]);
    const xzArchive = join(work, "A.tar.xz");
    const gzArchive = join(work, "A.tar.gz");
    const level = String(options.level);
    const out = join(work, "out");
    const fresh = async () => {
      await rm(out, { recursive: true, force: true });
      await mkdir(out);
      await run("sync", []);
    };
    const rows = [
      {
        name: `export .tar.xz -${level}`,
        ours: ["sh", "-c", `rm -f "$1" && exec "$0" -q --store-path "$2" copy "oci:$2:$3" "oci-archive:$1" --compression-level ${level}`, ociboot, xzArchive, store, TAG],
        baseline: ["sh", "-c", `tar -c -C "$0" . | xz -T0 -${level} > "$1"`, folder, join(out, "B.tar.xz")],
        label: `tar -c | xz -T0 -${level}`,
      },
      {
        name: `export .tar.gz -${level}`,
        ours: ["sh", "-c", `rm -f "$1" && exec "$0" -q --store-path "$2" copy "oci:$2:$3" "oci-archive:$1" --compression-level ${level}`, ociboot, gzArchive, store, TAG],
        baseline: ["sh", "-c", `tar -c -C "$0" . | gzip -${level} > "$1"`, folder, join(out, "B.tar.gz")],
        label: `tar -c | gzip -${level}`,
      },
      { name: "import .tar.xz", ours: [ociboot, "-q", "--store-path", out, "import", xzArchive], baseline: ["sh", "-c", `xz -d < "$0" | tar -x -C "$1"`, xzArchive, out], label: "xz -d | tar -x" },
      {
        name: "import .tar.xz (wasm)",
        ours: [ociboot, "-q", "--store-path", out, "import", "--xz-decoder", "wasm", xzArchive],
        baseline: ["sh", "-c", `xz -d < "$0" | tar -x -C "$1"`, xzArchive, out],
        label: "xz -d | tar -x",
      },
      { name: "import .tar.gz", ours: [ociboot, "-q", "--store-path", out, "import", gzArchive], baseline: ["sh", "-c", `gzip -d < "$0" | tar -x -C "$1"`, gzArchive, out], label: "gzip -d | tar -x" },
      { name: "import .tar", ours: [ociboot, "-q", "--store-path", out, "import", plain], baseline: ["tar", "-xf", plain, "-C", out], label: "tar -x" },
      // ociboot syncs each blob before it takes its name (docs/ingest.md); tar -x leaves that to the kernel.
      { name: "import .tar", ours: [ociboot, "-q", "--store-path", out, "import", plain], baseline: ["sh", "-c", `tar -xf "$0" -C "$1" && sync`, plain, out], label: "tar -x && sync" },
      {
        name: "fetch oci-archive:.tar.xz",
        ours: [ociboot, "-q", "fetch", `oci-archive:${xzArchive}`, "-o", out],
        baseline: ["sh", "-c", `xz -d < "$0" | tar -x -C "$1"`, xzArchive, out],
        label: "xz -d | tar -x",
      },
      {
        name: "fetch from registry",
        ours: [ociboot, "-q", "fetch", published, "-o", out],
        baseline: ["sh", "-c", `xz -d < "$0" | tar -x -C "$1"`, xzArchive, out],
        label: "xz -d | tar -x",
      },
    ];
    console.log(`content: ${formatSize(await folderBytes(folder))} layout, ${options.runs} runs each (rows under ${SHORT_ROW_SECONDS} s: ${Math.max(options.runs, SHORT_ROW_RUNS)}), median; ratio = ociboot / baseline`);
    console.log(`ociboot: ${ociboot}; every command runs without NODE_EXTRA_CA_CERTS (docs/performance.md)`);
    console.log(`${"row".padEnd(28)} ${"ociboot".padStart(9)} ${"RSS".padStart(7)}   ${"baseline".padEnd(22)} ${"seconds".padStart(8)} ${"ratio".padStart(6)}`);
    const selected = rows.filter((candidate) => options.only === undefined || options.only.test(candidate.name));
    // The export rows make the archives the import rows read; when they are left out, made here untimed.
    for (const archive of [xzArchive, gzArchive]) {
      const made = selected.some((row) => row.name.startsWith("export") && row.ours.includes(archive));
      if (!made) await run(ociboot, ["-q", "--store-path", store, "copy", `oci:${store}:${TAG}`, `oci-archive:${archive}`, "--compression-level", level]);
    }
    for (const row of selected) {
      const ours = [];
      const theirs = [];
      // Sub-second rows (a plain .tar import) move by a tenth of a second with any hiccup: once the
      // first pair shows a row is short, it runs at least SHORT_ROW_RUNS times so that the median holds.
      let runs = options.runs;
      for (let round = 0; round < runs; round++) {
        // Alternating who goes first spreads drift (other load, write-back) over both.
        const pair = round % 2 === 0 ? [[row.ours, ours], [row.baseline, theirs]] : [[row.baseline, theirs], [row.ours, ours]];
        for (const [argv, samples] of pair) {
          await fresh();
          samples.push(await measure(argv));
        }
        if (round === 0 && Math.max(ours[0].seconds, theirs[0].seconds) < SHORT_ROW_SECONDS) runs = Math.max(runs, SHORT_ROW_RUNS);
      }
      const mine = median(ours.map((sample) => sample.seconds));
      const base = median(theirs.map((sample) => sample.seconds));
      const rss = Math.max(...ours.map((sample) => sample.peakRssMb));
      console.log(`${row.name.padEnd(28)} ${`${mine.toFixed(2)} s`.padStart(9)} ${`${rss.toFixed(0)} MB`.padStart(7)}   ${row.label.padEnd(22)} ${`${base.toFixed(2)} s`.padStart(8)} ${(mine / base).toFixed(2).padStart(6)}`);
    }
    console.log(`load average after: ${loadavg().map((value) => value.toFixed(2)).join(" ")}`);
    return 0;
  } finally {
    await registry?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

function parseArguments(argv) {
  const parsed = { size: 300 * 1024 * 1024, runs: 3, level: 1, dir: undefined, binary: undefined, only: undefined };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const value = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === "--size") parsed.size = parseSize(value());
    else if (flag === "--runs") parsed.runs = Number(value());
    else if (flag === "--level") parsed.level = Number(value());
    else if (flag === "--dir") parsed.dir = value();
    else if (flag === "--ociboot") parsed.binary = value();
    else if (flag === "--only") parsed.only = new RegExp(value());
    else usage(`unknown option ${flag}`);
  }
  if (!Number.isInteger(parsed.runs) || parsed.runs < 1) usage("--runs must be a positive integer");
  if (!Number.isInteger(parsed.level) || parsed.level < 1 || parsed.level > 9) usage("--level must be 1 to 9 (xz and gzip)");
  return parsed;
}

function usage(message) {
  if (message) console.error(message);
  console.error("usage: npm run bench -- --archives [--size 300M] [--runs 3] [--level 1] [--dir TEMP_PARENT] [--ociboot BINARY] [--only ROW_REGEX]");
  process.exit(2);
}

function parseSize(text) {
  const match = /^(\d+)([KMG]?)$/i.exec(text);
  if (!match) usage(`bad size ${text}`);
  return Number(match[1]) * 1024 ** " KMG".indexOf((match[2] || " ").toUpperCase());
}

/**
 * Content that compresses as boot images do: system files (binaries, libraries, text) as the
 * rootfs, filling `size` with 8 MiB of random kernel and 4 MiB initrd beside it.
 */
async function makeContent(work, size) {
  const rootfs = Math.max(size - 12 * 1024 * 1024, 1024 * 1024);
  await run("sh", ["-c", `(tar -cf - /usr/lib /usr/bin /usr/share 2>/dev/null || true) | head -c ${rootfs} > "$0"`, join(work, "rootfs")]);
  await run("sh", ["-c", `head -c 8388608 /dev/urandom > "$0" && head -c 4194304 /dev/urandom > "$1"`, join(work, "vmlinuz"), join(work, "initrd")]);
}

async function measure(argv) {
  const timeFile = join(tmpdir(), `ociboot-bench-archives-time-${process.pid}`);
  const started = performance.now();
  await run("/usr/bin/time", ["-f", "%M", "-o", timeFile, ...argv]);
  const seconds = (performance.now() - started) / 1000;
  const peakKb = Number(readFileSync(timeFile, "utf8").trim().split("\n").at(-1));
  await rm(timeFile, { force: true });
  return { seconds, peakRssMb: peakKb / 1024 };
}

function run(command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"], env: commandEnv });
    let stderr = "";
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.once("error", (error) => reject(new Error(`Cannot run ${command}: ${error.message}`)));
    child.once("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command} ${args.join(" ")} failed (${code}):\n${stderr.slice(-2000)}`))));
  });
}

async function folderBytes(folder) {
  let total = 0;
  for (const entry of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath ?? entry.path, entry.name))).size;
  }
  return total;
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function formatSize(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(0)} MiB`;
}
