import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";

const CHECKER = join(import.meta.dirname, "..", "..", "scripts", "check-deps.mjs");

/** Writes a throw-away src/ tree: path → source text. */
async function sourceTree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), "ociboot-check-deps-"));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

describe("scripts/check-deps.mjs", () => {
  const roots: string[] = [];
  afterEach(async () => {
    for (const root of roots.splice(0)) await rm(root, { recursive: true, force: true });
  });
  const check = async (files: Record<string, string>) => {
    const root = await sourceTree(files);
    roots.push(root);
    return run("node", [CHECKER, root]);
  };

  it("passes a tree whose imports point one way", async () => {
    const result = await check({
      "oci/a.ts": "export const a = 1;\n",
      "content/b.ts": 'import { a } from "../oci/a.ts";\nexport const b = a;\n',
      "ops/c.ts": 'import { b } from "../content/b.ts";\nexport const c = b;\n',
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain("dependency direction: ok");
  });

  it("fails on a cycle inside one layer, type-only imports included, and names its path", async () => {
    const result = await check({
      "content/writer.ts": 'import { Buffered } from "./buffered.ts";\nexport interface Writer { x: number }\nexport const make = () => new Buffered();\n',
      "content/buffered.ts": 'import type { Writer } from "./writer.ts";\nexport class Buffered implements Partial<Writer> {}\n',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/import cycle: content\/(writer|buffered)\.ts → content\/(buffered|writer)\.ts → content\/\1\.ts/);
  });

  it("fails on a longer cycle across files, and on a module importing itself", async () => {
    const result = await check({
      "ops/a.ts": 'export { b } from "./b.ts";\n',
      "ops/b.ts": 'import { c } from "./c.ts";\nexport const b = c;\n',
      "ops/c.ts": 'import { a } from "./a.ts";\nexport const c = 1;\n',
      "cli/self.ts": 'import { self } from "./self.ts";\nexport const self = 1;\n',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/import cycle: ops\/a\.ts → ops\/b\.ts → ops\/c\.ts → ops\/a\.ts/);
    expect(result.stderr).toContain("import cycle: cli/self.ts → cli/self.ts");
  });

  it("still fails an import against the layer direction", async () => {
    const result = await check({ "oci/a.ts": 'import { c } from "../ops/c.ts";\n', "ops/c.ts": "export const c = 1;\n" });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("oci must not import ops");
  });

  it("passes this repository's own src/", async () => {
    const result = await run("node", [CHECKER]);
    expect(result.code, result.stderr).toBe(0);
  });
});
