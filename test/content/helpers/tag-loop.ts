// Child process for the store's concurrency tests: tags COUNT references into STORE as fast as it can.
// Usage: deno run -A tag-loop.ts STORE PREFIX COUNT
import { OciLayoutStore } from "../../../src/content/layout.ts";

const [root, prefix, countText] = Deno.args;
if (!root || !prefix || !countText) throw new Error("usage: tag-loop.ts STORE PREFIX COUNT");
const store = new OciLayoutStore(root, { lockTimeoutMs: 120_000 });
const manifest = await store.resolve("base");
for (let n = 0; n < Number(countText); n++) {
  await store.tag(manifest, `example.test/${prefix}:${n}`);
}

declare const Deno: { args: string[] };
