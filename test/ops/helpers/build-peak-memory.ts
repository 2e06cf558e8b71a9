// Child process for the streaming test: builds an onmetal image from the given files into STORE and
// prints the process's peak resident memory (VmHWM, KiB), so the test can tell files were streamed.
// Usage: deno run -A build-peak-memory.ts STORE ROOTFS INITRAMFS KERNEL
import { readFileSync } from "node:fs";
import { OciLayoutStore } from "../../../src/content/layout.ts";
import { buildImage } from "../../../src/ops/build.ts";

const [root, rootfs, initramfs, kernel] = Deno.args;
if (!root || !rootfs || !initramfs || !kernel) throw new Error("usage: build-peak-memory.ts STORE ROOTFS INITRAMFS KERNEL");
const result = await buildImage(new OciLayoutStore(root), { rootfs, initramfs, kernel }, { format: "onmetal" });
const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
console.log(JSON.stringify({ digest: result.descriptor.digest, peakKiB: Number(peak) }));

declare const Deno: { args: string[] };
