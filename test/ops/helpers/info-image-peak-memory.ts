// Child process for the streaming test: builds an info image from the given files into STORE and
// prints the process's peak resident memory (VmHWM, KiB), so the test can tell files were streamed.
// Usage: deno run -A info-image-peak-memory.ts STORE OS_RELEASE BUILD_LOG PACKAGE_MANIFEST
import { readFileSync } from "node:fs";
import { OciLayoutStore } from "../../../src/content/layout.ts";
import { buildInfoImage } from "../../../src/ops/info-image.ts";

const [root, osRelease, buildLog, packageManifest] = Deno.args;
if (!root || !osRelease || !buildLog || !packageManifest) throw new Error("usage: info-image-peak-memory.ts STORE OS_RELEASE BUILD_LOG PACKAGE_MANIFEST");
const result = await buildInfoImage(new OciLayoutStore(root), { osRelease, buildLog, packageManifest }, { tag: "localhost/info:1", platform: { os: "linux", architecture: "amd64" } });
const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
console.log(JSON.stringify({ diffId: result.diffId, layerSize: result.layer.size, peakKiB: Number(peak) }));

declare const Deno: { args: string[] };
