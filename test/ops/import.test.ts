import { execFile } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import tarStream from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { importArchive } from "../../src/ops/import.ts";
import { makeBootImage, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { runInProcess } from "../cli/cli-context.ts";

const exec = promisify(execFile);
let sandbox: string;
let layout: WrittenLayout;
let kernel: Buffer;

beforeEach(async () => {
  sandbox = await mkdtemp(join(tmpdir(), "ociboot-import-"));
  kernel = randomBytes(700_000);
  // The Garden Linux archive: an onmetal-image store in onmetal/, with the empty ingest/ containerd leaves.
  layout = await writeOciLayout(join(sandbox, "onmetal"), {
    manifests: [
      {
        ...makeBootImage({ kernel: { bytes: kernel }, initrd: { bytes: randomBytes(300_000) }, rootfs: { bytes: randomBytes(600_000) }, commandLine: "console=ttyS0", dialect: "onmetal" }),
        untaggedEntry: true,
      },
    ],
  });
  await mkdir(join(sandbox, "onmetal", "ingest"));
});
afterEach(async () => {
  await rm(sandbox, { recursive: true, force: true });
});

async function listTree(directory: string): Promise<string[]> {
  const names = await readdir(directory, { recursive: true });
  return names.map((name) => relative(directory, join(directory, name))).sort();
}

async function tarTo(archive: string, flags: string[]): Promise<void> {
  await exec("tar", [...flags, archive, "onmetal"], { cwd: sandbox });
}

const cli = (...argv: string[]) => runInProcess(argv, { cwd: sandbox });

/** Each way an archive is compressed and decoded: tar flags and the `--xz-decoder` to read it with. */
const ARCHIVE_KINDS = [
  ["tar -cJf (system xz)", ["-cJf"], "system"],
  ["tar -cJf (WebAssembly xz)", ["-cJf"], "wasm"],
  ["tar -czf", ["-czf"], "auto"],
  ["tar -cf", ["-cf"], "auto"],
] as const;

describe("import", () => {
  for (const [name, flags, decoder] of ARCHIVE_KINDS) {
    it(`streams and verifies an onmetal/ archive made with ${name}`, async () => {
      const archive = join(sandbox, "image.oci.tar.xz");
      await tarTo(archive, [...flags]);
      const imported = await cli("--store-path", "store", "import", archive, "--xz-decoder", decoder);
      const hex = layout.manifests[0]?.descriptor.digest.slice("sha256:".length) ?? "";
      expect(imported.stdout).toBe(`Successfully imported ${hex}\n`);
      expect((await cli("--store-path", "store", "list")).stdout).toBe(`REPOSITORY  TAG         IMAGE ID\n<none>      <none>      ${hex.slice(0, 12)}\n`);
      const kernelHex = createHash("sha256").update(kernel).digest("hex");
      expect(await readFile(join(sandbox, "store", "blobs", "sha256", kernelHex))).toEqual(kernel);
      // Importing again changes nothing.
      await cli("--store-path", "store", "import", archive);
      expect((await cli("--store-path", "store", "list")).stdout.split("\n")).toHaveLength(3);
    });
  }

  for (const [name, flags, decoder] of ARCHIVE_KINDS) {
    it(`names a cut archive made with ${name} as truncated (exit 5), never a temporary store or a decoder's internals`, async () => {
      const archive = join(sandbox, "cut.oci.tar");
      await tarTo(archive, [...flags]);
      await truncate(archive, 400_000);
      const result = await cli("--store-path", "store", "import", archive, "--xz-decoder", decoder);
      expect(result.error).toMatchObject({ code: "INTEGRITY" });
      expect(result.stderr).toContain(`Cannot read archive ${archive}: it is truncated or corrupt`);
      expect(result.stderr).not.toMatch(/get_next_output|ociboot-archive-|Cannot write a blob/);
      expect(await readFile(join(sandbox, "store", "index.json"), "utf8").catch(() => "none")).toBe("none");
    });
  }

  it("falls back to WebAssembly when no xz program is on PATH (under Deno)", async () => {
    const archive = join(sandbox, "image.oci.tar.xz");
    await tarTo(archive, ["-cJf"]);
    const deno = join(process.cwd(), "node_modules", ".bin", "deno");
    const { stdout } = await exec(deno, ["run", "-A", join(process.cwd(), "src", "main.ts"), "--store-path", "store", "import", archive], {
      cwd: sandbox,
      env: { ...process.env, PATH: "/nonexistent" },
    });
    expect(stdout).toBe(`Successfully imported ${layout.manifests[0]?.descriptor.digest.slice("sha256:".length)}\n`);
  });

  it("reads an archive of the layout root (skopeo's oci-archive shape) and keeps its tags", async () => {
    await rm(join(sandbox, "onmetal"), { recursive: true });
    await writeOciLayout(join(sandbox, "flat"), {
      manifests: [makeBootImage({ kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, dialect: "onmetal", tag: "ghcr.io/a/b:1" })],
    });
    await exec("tar", ["-cf", join(sandbox, "flat.tar"), "-C", join(sandbox, "flat"), "."]);
    const result = await importArchive(new OciLayoutStore(join(sandbox, "store")), join(sandbox, "flat.tar"));
    expect(result.images.map((image) => image.annotations?.["org.opencontainers.image.ref.name"])).toEqual(["ghcr.io/a/b:1"]);
    expect((await cli("--store-path", "store", "list")).stdout).toContain("ghcr.io/a/b 1           ");
  });

  describe("refuses hostile archives, writing nothing outside the store", () => {
    /** Writes a tar with the layout's real files plus the given extra entries, in this order. */
    async function hostileTar(file: string, extra: Array<{ header: tarStream.Header | Partial<tarStream.Header> & { name: string }; body?: Uint8Array | string }>): Promise<void> {
      const pack = tarStream.pack();
      const chunks: Buffer[] = [];
      pack.on("data", (chunk) => void chunks.push(chunk as Buffer));
      const done = new Promise<void>((resolve) => pack.on("end", () => resolve()));
      const add = (header: Partial<tarStream.Header> & { name: string }, body?: Uint8Array | string) =>
        new Promise<void>((resolve, reject) => {
          pack.entry(header, body ?? "", (error) => (error ? reject(error) : resolve()));
        });
      for (const entry of extra) await add(entry.header, entry.body);
      await add({ name: "onmetal/oci-layout" }, '{"imageLayoutVersion":"1.0.0"}');
      await add({ name: "onmetal/index.json" }, await readFile(join(sandbox, "onmetal", "index.json")));
      pack.finalize();
      await done;
      await writeFile(file, Buffer.concat(chunks));
    }

    /**
     * import refuses the archive, and so does fetch, which reads it in place (a plain tar by offset,
     * a compressed one in one pass spooling into its output folder): same code, same message.
     */
    async function expectRefused(archive: string, code: string, message: RegExp, options: { extraArgs?: string[]; inPlace?: boolean } = {}): Promise<void> {
      const before = await listTree(sandbox);
      const result = await cli("--store-path", "store", "import", archive, ...(options.extraArgs ?? []));
      expect(result.error).toMatchObject({ code });
      expect(result.stderr).toMatch(message);
      if (options.inPlace !== false) {
        const fetched = await cli("fetch", `oci-archive:${archive}`, "-o", "out");
        expect(fetched.error, fetched.stderr).toMatchObject({ code });
        expect(fetched.stderr).toMatch(message);
      }
      const after = (await listTree(sandbox)).filter((path) => path !== "store" && !path.startsWith("store/"));
      expect(after).toEqual(before.filter((path) => path !== "store" && !path.startsWith("store/")));
      // No image entry appears: index.json is written only after a fully verified import.
      const index = await readFile(join(sandbox, "store", "index.json"), "utf8").catch(() => '{"manifests":[]}');
      expect((JSON.parse(index) as { manifests: unknown[] }).manifests).toEqual([]);
    }

    it("a symlink entry", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/blobs/sha256/evil", type: "symlink", linkname: "/etc/passwd" } }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /is a symlink; only regular files and directories/);
    });

    it("a hard link entry", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/oci-layout2", type: "link", linkname: "onmetal/oci-layout" } }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /is a link/);
    });

    it("a ../ path", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/../../escaped" }, body: "x" }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /escapes with \.\./);
    });

    it("an absolute path", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: join(sandbox, "absolute") }, body: "x" }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /has an absolute path/);
    });

    it("a file outside blobs/, index.json and oci-layout", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/ingest/something" }, body: "x" }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /does not belong in an OCI image layout/);
    });

    it("a corrupted blob", async () => {
      const real = layout.manifests[0]?.layers[2];
      const name = `onmetal/blobs/sha256/${real?.digest.slice("sha256:".length)}`;
      const corrupted = Buffer.from(kernel);
      corrupted[1000] = (corrupted[1000] ?? 0) ^ 0xff;
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name }, body: corrupted }]);
      // This archive holds no manifest, so fetch stops before any blob; test/e2e/archive-in-place.test.ts has fetch refuse a tampered blob.
      await expectRefused(join(sandbox, "a.tar"), "INTEGRITY", /content hashes to sha256:/, { inPlace: false });
      expect(await readdir(join(sandbox, "store", "blobs", "sha256"))).toEqual([]);
    });

    it("a blob the index names but the archive lacks", async () => {
      await hostileTar(join(sandbox, "a.tar"), []);
      // Read in place, the missing blob is only missed when it is needed: fetch says NOT_FOUND then.
      await expectRefused(join(sandbox, "a.tar"), "INTEGRITY", /lacks sha256:/, { inPlace: false });
    });

    it("index.json twice", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/index.json" }, body: await readFile(join(sandbox, "onmetal", "index.json")) }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /index\.json appears twice/);
    });

    it("an oversized index.json", async () => {
      await hostileTar(join(sandbox, "a.tar"), [{ header: { name: "onmetal/index.json" }, body: " ".repeat(5 * 1024 * 1024) }]);
      await expectRefused(join(sandbox, "a.tar"), "UNSAFE_CONTENT", /index\.json has 5242880 bytes, more than the 4194304-byte limit/);
    });

    it("a decompression bomb, past --max-size", async () => {
      const bomb = join(sandbox, "bomb");
      await mkdir(join(bomb, "onmetal", "blobs", "sha256"), { recursive: true });
      const zeros = join(bomb, "zeros");
      await writeFile(zeros, "");
      await truncate(zeros, 64 * 1024 * 1024);
      const { stdout } = await exec("sha256sum", [zeros]);
      await exec("mv", [zeros, join(bomb, "onmetal", "blobs", "sha256", stdout.slice(0, 64))]);
      await exec("tar", ["-cJf", join(sandbox, "bomb.tar.xz"), "onmetal"], { cwd: bomb });
      await rm(join(bomb), { recursive: true });
      await expectRefused(join(sandbox, "bomb.tar.xz"), "UNSAFE_CONTENT", /expands to more than 16777216 bytes/, { extraArgs: ["--max-size", String(16 * 1024 * 1024)], inPlace: false });
    });

    it("a decompression bomb, past the default expansion ratio", async () => {
      const bomb = join(sandbox, "bomb");
      await mkdir(join(bomb, "onmetal", "blobs", "sha256"), { recursive: true });
      const zeros = join(bomb, "zeros");
      await writeFile(zeros, "");
      await truncate(zeros, 300 * 1024 * 1024);
      const { stdout } = await exec("sha256sum", [zeros]);
      await exec("mv", [zeros, join(bomb, "onmetal", "blobs", "sha256", stdout.slice(0, 64))]);
      await exec("tar", ["-czf", join(sandbox, "bomb.tar.gz"), "onmetal"], { cwd: bomb });
      await rm(join(bomb), { recursive: true });
      await expectRefused(join(sandbox, "bomb.tar.gz"), "UNSAFE_CONTENT", /expands more than 200 times/);
    });
  });
});
