// Checks that dependencies point one way: cli → ops → content/registry → oci (STYLE.md).
// A module may import its own layer or any layer below; `oci/` stays free of I/O modules.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const src = join(dirname(fileURLToPath(import.meta.url)), "..", "src");
const LAYER = { "errors.ts": 0, "version.ts": 0, "aligned-blocks.ts": 0, "retry.ts": 0, oci: 1, content: 2, registry: 2, ops: 3, cli: 4, "main.ts": 5 };
// Stores are reached by operations only through the store interface in content/.
const FORBIDDEN = [["ops", "registry"], ["content", "registry"], ["registry", "ops"]];
const PURE_CORE_ALLOWED_BUILTINS = new Set(["node:crypto", "node:buffer", "node:util"]);

function* walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith(".ts")) yield path;
  }
}
const area = (file) => relative(src, file).split(sep)[0];

const problems = [];
for (const file of walk(src)) {
  const from = area(file);
  const text = readFileSync(file, "utf8");
  for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']/g)) {
    const target = match[1];
    if (target.startsWith(".")) {
      const to = area(resolve(dirname(file), target));
      if (!target.endsWith(".ts")) problems.push(`${relative(src, file)}: relative import without .ts: ${target}`);
      if (LAYER[to] > LAYER[from]) problems.push(`${relative(src, file)}: ${from} must not import ${to} (${target})`);
      if (FORBIDDEN.some(([a, b]) => a === from && b === to)) problems.push(`${relative(src, file)}: ${from} must not import ${to} (${target})`);
    } else if (from === "oci" && !PURE_CORE_ALLOWED_BUILTINS.has(target)) {
      problems.push(`${relative(src, file)}: the pure core must not import ${target}`);
    }
  }
}
if (problems.length > 0) {
  console.error(`dependency direction check failed:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log("dependency direction: ok");
