// Builds dist/ociboot: an esbuild CommonJS bundle injected into a copy of the node binary
// (Node single-executable application), so the result runs with no node_modules and no Node on PATH.
// This is the development build on the machine's own Node; scripts/release.mjs makes the releases.
import { mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { bundleSources, injectBlob, makeBlob, root } from "./sea.mjs";

const dist = join(root, "dist");
const bundle = join(dist, "ociboot.cjs");
const blob = join(dist, "ociboot.blob");
const binary = join(dist, "ociboot");

mkdirSync(dist, { recursive: true });
await bundleSources(bundle);
makeBlob(process.execPath, bundle, blob, { sameArch: true });
injectBlob(process.execPath, blob, binary);

const mb = (path) => (statSync(path).size / 1e6).toFixed(1);
console.log(`built ${binary} (${mb(binary)} MB; bundle ${mb(bundle)} MB)`);
