// Child process for the crash test: tags into STORE, but stops in the middle of writing the new
// index.json — all but its last bytes are in the temporary file, the lock is held, nothing is renamed yet —
// prints "mid-write" and waits to be killed. The pause is made by wrapping FileHandle.writeFile,
// so the store's own code runs unchanged up to that point.
// Usage: deno run -A pause-mid-write.ts STORE TAG
import { open, rm } from "node:fs/promises";
import { join } from "node:path";
import { OciLayoutStore } from "../../../src/content/layout.ts";

const [root, tag] = Deno.args;
if (!root || !tag) throw new Error("usage: pause-mid-write.ts STORE TAG");

const probePath = join(root, "probe.tmp");
const probe = await open(probePath, "w");
const handlePrototype = Object.getPrototypeOf(probe) as { writeFile(this: unknown, data: string | Uint8Array): Promise<void>; sync(this: unknown): Promise<void> };
await probe.close();
await rm(probePath);

const writeFile = handlePrototype.writeFile;
handlePrototype.writeFile = async function (this: unknown, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  if (!new TextDecoder().decode(bytes).includes(tag)) return writeFile.call(this, data);
  // All but the closing bytes: the new entry is written, the document is not complete.
  await writeFile.call(this, bytes.subarray(0, bytes.byteLength - 2));
  await handlePrototype.sync.call(this);
  console.log("mid-write");
  // Keeps the process alive until the parent's SIGKILL.
  setInterval(() => undefined, 60_000);
  return new Promise<void>(() => undefined);
};

const store = new OciLayoutStore(root);
await store.tag(await store.resolve("base"), tag);
throw new Error("the write was meant to pause, not finish");

declare const Deno: { args: string[] };
