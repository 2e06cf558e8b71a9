// npm run release:figures [-- --runs N]
//
// Measures what docs/releases.md records for each executable in dist/release (run `npm run
// release` first): size, .xz size and `--version` start-up (median of N runs, page cache warm).
// The arm64 executable runs under qemu-user on an x64 machine, so its time is emulation's, not an
// arm64 machine's. Prints a Markdown table.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { packageJson, root } from "./sea.mjs";

const { values } = parseArgs({ options: { runs: { type: "string", default: "15" } } });
const runs = Number(values.runs);
const pin = JSON.parse(readFileSync(join(root, "scripts", "release-runtime.json"), "utf8"));
const releaseDir = join(root, "dist", "release");
const hostArch = process.arch;
const QEMU = { arm64: ["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu"], x64: ["qemu-x86_64-static"] };

// NODE_EXTRA_CA_CERTS makes Node parse a CA bundle at every start (see README "How fast"); ociboot
// does not need it, so the main figure is without it and the other is shown beside it.
const plainEnv = { ...process.env };
delete plainEnv.NODE_EXTRA_CA_CERTS;
delete plainEnv.NODE_OPTIONS;

/**
 * Median wall time and median CPU time (user + sys) of `command`. On a shared, loaded machine the
 * wall time is mostly waiting for a core; the CPU time is what the start itself costs. bash's
 * `times` reports the children's CPU, so nothing beyond bash is needed.
 */
function medianStartup(command, env) {
  const walls = [];
  const cpus = [];
  const quoted = command.map((part) => `'${part.replaceAll("'", "'\\''")}'`).join(" ");
  for (let i = 0; i < runs; i++) {
    const started = process.hrtime.bigint();
    const result = spawnSync("bash", ["-c", `${quoted} >/dev/null || exit 1; times`], { env, encoding: "utf8" });
    walls.push(Number(process.hrtime.bigint() - started) / 1e9);
    if (result.status !== 0) throw new Error(`${command.join(" ")} failed: ${result.stderr}`);
    // `times` prints the shell's own user/sys line, then its children's: "0m0.040s 0m0.008s".
    const children = result.stdout.trim().split("\n").at(-1).match(/(\d+)m([\d.]+)s (\d+)m([\d.]+)s/);
    cpus.push(Number(children[1]) * 60 + Number(children[2]) + Number(children[3]) * 60 + Number(children[4]));
  }
  const median = (values) => values.sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return { wall: median(walls), cpu: median(cpus) };
}

const mb = (path) => `${(statSync(path).size / 1e6).toFixed(1)} MB`;
const seconds = (value) => `${value.toFixed(3)} s`;
const timing = ({ wall, cpu }) => `${seconds(wall)} (CPU ${seconds(cpu)})`;

const rows = [];
for (const arch of ["x64", "arm64"]) {
  const file = join(releaseDir, `ociboot-${packageJson.version}-linux-${arch}`);
  if (!existsSync(file)) throw new Error(`${file} is missing: run npm run release`);
  const command = arch === hostArch ? [file, "--version"] : [...QEMU[arch], file, "--version"];
  const startup = medianStartup(command, plainEnv);
  const withCa = process.env.NODE_EXTRA_CA_CERTS ? timing(medianStartup(command, process.env)) : "(not set)";
  const how = arch === hostArch ? "native" : `under ${QEMU[arch][0]}`;
  rows.push(`| linux-${arch} (${how}) | ${mb(file)} | ${mb(`${file}.xz`)} | ${timing(startup)} | ${withCa} |`);
}
const bareNode = join(root, "node_modules", ".cache", "ociboot-release", `node-${pin.version}-linux-${hostArch}`);
const bare = existsSync(bareNode) ? timing(medianStartup([bareNode, "-e", "0"], plainEnv)) : "n/a";

console.log(`Measured ${new Date().toISOString().slice(0, 10)}: ${cpus().length} × ${cpus()[0]?.model ?? "CPU"}, load average ${loadavg()[0].toFixed(1)}, median of ${runs} runs, Node ${pin.version} embedded.\n`);
console.log("| executable | size | .xz | `--version`, wall (CPU) | the same with NODE_EXTRA_CA_CERTS |");
console.log("|---|---|---|---|---|");
for (const row of rows) console.log(row);
console.log(`\nBare Node ${pin.version} (\`node -e 0\`, the stripped runtime alone, linux-${hostArch}): ${bare}.`);
