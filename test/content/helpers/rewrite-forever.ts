// Child process for the crash test: rewrites index.json of STORE with a growing entry list until killed.
// Usage: deno run -A rewrite-forever.ts STORE
import { OciLayoutStore } from "../../../src/content/layout.ts";

const [root] = Deno.args;
if (!root) throw new Error("usage: rewrite-forever.ts STORE");
const store = new OciLayoutStore(root);
const manifest = await store.resolve("base");
for (let n = 0; ; n++) {
  await store.tag(manifest, `example.test/crash:${n % 500}-${"x".repeat(n % 200)}`);
  if (n === 0) console.log("running");
}

declare const Deno: { args: string[] };
