// Measures xz decoding as `import` does it: the system `xz` program versus the WebAssembly fallback.
// Usage: deno run -A scripts/bench-xz.ts FILE.tar.xz, or under Node:
//   npx esbuild scripts/bench-xz.ts --bundle --platform=node --format=cjs --outfile=/tmp/bench-xz.cjs && node /tmp/bench-xz.cjs FILE
import { argv } from "node:process";
import { openDecompressed, type XzDecoder } from "../src/content/decompress.ts";

async function drain(file: string, xz: XzDecoder): Promise<{ seconds: number; bytes: number }> {
  const started = performance.now();
  const { stream } = await openDecompressed(file, { xz, maxRatio: Number.POSITIVE_INFINITY });
  let bytes = 0;
  for await (const chunk of stream) bytes += chunk.byteLength;
  return { seconds: (performance.now() - started) / 1000, bytes };
}

async function main(): Promise<void> {
  const file = argv[2] ?? (globalThis as { Deno?: { args: string[] } }).Deno?.args[0];
  if (!file) throw new Error("usage: bench-xz FILE.tar.xz");
  for (const decoder of ["system", "wasm"] as const) {
    const { seconds, bytes } = await drain(file, decoder);
    console.log(`${decoder.padEnd(6)} ${(bytes / 1e6).toFixed(0)} MB in ${seconds.toFixed(2)} s = ${(bytes / 1e6 / seconds).toFixed(0)} MB/s`);
  }
}

// No top-level await: the script must also bundle to CommonJS, as the single executable is built.
void main();
