// Checks that dependencies point one way: cli → ops → content/registry → oci (docs/architecture.md).
// A module may import its own layer or any layer below; `oci/` stays free of I/O modules; and no
// module reaches itself again through its imports (type-only imports included: a cycle of types
// is still two modules that cannot be understood apart).
// Usage: node scripts/check-deps.mjs [SRC_DIR]   (default: the repository's src/)
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const LAYER = { "errors.ts": 0, "version.ts": 0, "aligned-blocks.ts": 0, "retry.ts": 0, oci: 1, content: 2, registry: 2, ops: 3, cli: 4, "main.ts": 5 };
// Stores are reached by operations only through the store interface in content/.
const FORBIDDEN = [["ops", "registry"], ["content", "registry"], ["registry", "ops"]];
// jsonc-parser is pure computation (a JSON scanner), no I/O: docs/strict-json.md.
// The @sigstore packages verify bundles from bytes and a trusted root, with no I/O: docs/keyless.md.
const PURE_CORE_ALLOWED_BUILTINS = new Set(["node:crypto", "node:buffer", "node:util", "jsonc-parser", "@sigstore/bundle", "@sigstore/protobuf-specs", "@sigstore/verify"]);

function* walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* walk(path);
    else if (path.endsWith(".ts")) yield path;
  }
}

/** Every problem found under `src`: layer violations, impure core imports and import cycles. */
export function checkDependencies(src) {
  const area = (file) => relative(src, file).split(sep)[0];
  const problems = [];
  const graph = new Map();
  for (const file of walk(src)) {
    const from = area(file);
    const text = readFileSync(file, "utf8");
    const edges = [];
    graph.set(file, edges);
    for (const match of text.matchAll(/(?:^|\n)\s*(?:import|export)[^'"]*?from\s+["']([^"']+)["']/g)) {
      const target = match[1];
      if (target.startsWith(".")) {
        const resolved = resolve(dirname(file), target);
        const to = area(resolved);
        if (!target.endsWith(".ts")) problems.push(`${relative(src, file)}: relative import without .ts: ${target}`);
        if (LAYER[to] > LAYER[from]) problems.push(`${relative(src, file)}: ${from} must not import ${to} (${target})`);
        if (FORBIDDEN.some(([a, b]) => a === from && b === to)) problems.push(`${relative(src, file)}: ${from} must not import ${to} (${target})`);
        if (existsSync(resolved)) edges.push(resolved);
      } else if (from === "oci" && !PURE_CORE_ALLOWED_BUILTINS.has(target)) {
        problems.push(`${relative(src, file)}: the pure core must not import ${target}`);
      }
    }
  }
  for (const cycle of importCycles(graph)) problems.push(`import cycle: ${cycle.map((file) => relative(src, file)).join(" → ")}`);
  return problems;
}

/** One cycle per strongly connected component of more than one module (or a module importing itself). */
function importCycles(graph) {
  // Tarjan's algorithm, iterative so deep import chains cannot overflow the stack.
  const index = new Map();
  const low = new Map();
  const onStack = new Set();
  const stack = [];
  const cycles = [];
  let counter = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work = [[root, 0]];
    index.set(root, counter);
    low.set(root, counter++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const [node, next] = frame;
      const edges = graph.get(node) ?? [];
      if (next < edges.length) {
        frame[1]++;
        const child = edges[next];
        if (!index.has(child)) {
          index.set(child, counter);
          low.set(child, counter++);
          stack.push(child);
          onStack.add(child);
          work.push([child, 0]);
        } else if (onStack.has(child)) {
          low.set(node, Math.min(low.get(node), index.get(child)));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1][0];
        low.set(parent, Math.min(low.get(parent), low.get(node)));
      }
      if (low.get(node) === index.get(node)) {
        const component = [];
        let member;
        do {
          member = stack.pop();
          onStack.delete(member);
          component.push(member);
        } while (member !== node);
        if (component.length > 1 || (graph.get(node) ?? []).includes(node)) cycles.push(cycleThrough(graph, new Set(component), node));
      }
    }
  }
  return cycles;
}

/** A concrete path start → … → start inside one component, for the message. */
function cycleThrough(graph, members, start) {
  const previous = new Map([[start, undefined]]);
  const queue = [start];
  while (queue.length > 0) {
    const node = queue.shift();
    for (const child of graph.get(node) ?? []) {
      if (!members.has(child)) continue;
      if (child === start) {
        const path = [start];
        for (let at = node; at !== start; at = previous.get(at)) path.splice(1, 0, at);
        return [...path, start];
      }
      if (!previous.has(child)) {
        previous.set(child, node);
        queue.push(child);
      }
    }
  }
  return [start, start];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const src = process.argv[2] !== undefined ? resolve(process.argv[2]) : join(dirname(fileURLToPath(import.meta.url)), "..", "src");
  const problems = checkDependencies(src);
  if (problems.length > 0) {
    console.error(`dependency direction check failed:\n  ${problems.join("\n  ")}`);
    process.exit(1);
  }
  console.log("dependency direction: ok");
}
