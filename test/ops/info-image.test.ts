import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { readFile, mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import tarStream from "tar-stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { buildInfoImage, type InfoImageFiles } from "../../src/ops/info-image.ts";
import { parseOsRelease } from "../../src/ops/os-release.ts";

const exec = promisify(execFile);
const DENO = join(process.cwd(), "node_modules", ".bin", "deno");
let work: string;
let files: InfoImageFiles;
const OS_RELEASE = 'NAME="Garden Linux"\nVERSION="1592.1 (today)"\nID=gardenlinux\n';
const LOG = "I: building\n".repeat(100_000);
const MANIFEST = "bash 5.2\nsystemd 252\n";

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-info-image-"));
  files = { osRelease: join(work, "metal.os-release"), buildLog: join(work, "metal.log"), packageManifest: join(work, "metal.manifest") };
  await writeFile(files.osRelease, OS_RELEASE);
  await writeFile(files.buildLog, LOG);
  await writeFile(files.packageManifest, MANIFEST);
});
afterEach(async () => {
  await rm(work, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => `sha256:${createHash("sha256").update(bytes).digest("hex")}`;

async function tarEntries(tar: Uint8Array): Promise<Array<{ name: string; type: string; mode: number; uid: number; mtime: number; text: string }>> {
  const extract = tarStream.extract();
  const entries: Array<{ name: string; type: string; mode: number; uid: number; mtime: number; text: string }> = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const { name, type, mode, uid, mtime } = entry.header;
      entries.push({ name, type: type ?? "file", mode: mode ?? 0, uid: uid ?? -1, mtime: mtime?.getTime() ?? -1, text: Buffer.concat(chunks).toString("utf8") });
    }
  })();
  extract.end(Buffer.from(tar));
  await done;
  return entries;
}

describe("buildInfoImage", () => {
  it("gives the same digest for the same files, in separate stores; another created time gives another", async () => {
    const options = { tag: "127.0.0.1:5000/gl:info", platform: { os: "linux", architecture: "amd64" } };
    const first = await buildInfoImage(new OciLayoutStore(join(work, "one")), files, options);
    const second = await buildInfoImage(new OciLayoutStore(join(work, "two")), files, options);
    expect(second.descriptor.digest).toBe(first.descriptor.digest);
    expect(second.layer.digest).toBe(first.layer.digest);
    const dated = await buildInfoImage(new OciLayoutStore(join(work, "three")), files, { ...options, created: "2024-01-02T03:04:05Z" });
    expect(dated.descriptor.digest).not.toBe(first.descriptor.digest);
  });

  it("stores a gzip tar whose uncompressed sha256 is the config's diff_id, holding the three files", async () => {
    const store = new OciLayoutStore(join(work, "store"));
    const result = await buildInfoImage(store, files, { tag: "ghcr.io/me/gl:1592.1-info", platform: { os: "linux", architecture: "arm64", variant: "v8" }, created: "2024-01-02T03:04:05Z" });

    const manifest = JSON.parse(new TextDecoder().decode(await store.readBlob(result.descriptor))) as {
      mediaType: string;
      config: { mediaType: string; digest: string; size: number };
      layers: Array<{ mediaType: string; digest: string; size: number }>;
      subject?: unknown;
    };
    expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
    expect(manifest.config.mediaType).toBe("application/vnd.oci.image.config.v1+json");
    expect(manifest.layers).toEqual([{ mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", digest: result.layer.digest, size: result.layer.size }]);
    expect(manifest.subject).toBeUndefined();

    const compressed = await readFile(store.blobPath(result.layer.digest));
    expect(sha256(compressed)).toBe(result.layer.digest);
    const tar = gunzipSync(compressed);
    expect(sha256(tar)).toBe(result.diffId);

    const config = JSON.parse(new TextDecoder().decode(await store.readBlob(manifest.config as never))) as Record<string, unknown>;
    expect(config).toMatchObject({
      created: "2024-01-02T03:04:05Z",
      architecture: "arm64",
      os: "linux",
      variant: "v8",
      config: { Labels: { "org.opencontainers.image.title": "Garden Linux", "org.opencontainers.image.version": "1592.1 (today)" } },
      rootfs: { type: "layers", diff_ids: [result.diffId] },
    });
    expect(config["history"]).toHaveLength(1);

    const entries = await tarEntries(tar);
    expect(entries.map((entry) => [entry.name, entry.type])).toEqual([
      ["etc/", "directory"],
      ["usr/", "directory"],
      ["usr/share/", "directory"],
      ["usr/share/gardenlinux/", "directory"],
      ["etc/os-release", "file"],
      ["usr/share/gardenlinux/build.log", "file"],
      ["usr/share/gardenlinux/packages.manifest", "file"],
    ]);
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    expect(byName.get("etc/os-release")?.text).toBe(OS_RELEASE);
    expect(byName.get("usr/share/gardenlinux/build.log")?.text).toBe(LOG);
    expect(byName.get("usr/share/gardenlinux/packages.manifest")?.text).toBe(MANIFEST);
    for (const entry of entries) {
      expect(entry.uid).toBe(0);
      expect(entry.mtime).toBe(Date.parse("2024-01-02T03:04:05Z"));
    }
    expect((await store.resolve("ghcr.io/me/gl:1592.1-info")).digest).toBe(result.descriptor.digest);
  });

  it("names the boot image it describes as its subject, so the store lists it among that image's referrers", async () => {
    const store = new OciLayoutStore(join(work, "store"));
    const plain = await buildInfoImage(store, files, { tag: "localhost/plain:1", platform: { os: "linux", architecture: "amd64" } });
    const subject = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: plain.descriptor.digest, size: plain.descriptor.size };
    const described = await buildInfoImage(store, files, { tag: "localhost/info:1", platform: { os: "linux", architecture: "amd64" }, subject });
    const manifest = JSON.parse(new TextDecoder().decode(await store.readBlob(described.descriptor))) as { subject?: unknown };
    expect(manifest.subject).toEqual(subject);
    expect((await store.referrers(subject)).map((referrer) => referrer.digest)).toEqual([described.descriptor.digest]);
  });

  it("streams a large build log: peak memory stays far below its size", async () => {
    await truncate(files.buildLog, 384 * 1024 * 1024);
    const helper = join("test", "ops", "helpers", "info-image-peak-memory.ts");
    const { stdout } = await exec(DENO, ["run", "-A", helper, join(work, "store"), files.osRelease, files.buildLog, files.packageManifest]);
    const { peakKiB, layerSize } = JSON.parse(stdout) as { peakKiB: number; layerSize: number };
    expect(peakKiB).toBeGreaterThan(0);
    expect(peakKiB * 1024).toBeLessThan(200 * 1024 * 1024);
    expect(layerSize).toBeLessThan(2 * 1024 * 1024);
  }, 120_000);

  it("refuses a missing file by name before writing anything", async () => {
    const store = new OciLayoutStore(join(work, "store"));
    const build = buildInfoImage(store, { ...files, buildLog: join(work, "missing.log") }, { tag: "localhost/x:1", platform: { os: "linux", architecture: "amd64" } });
    await expect(build).rejects.toMatchObject({ code: "NOT_FOUND", message: expect.stringContaining(`Cannot read the build log ${join(work, "missing.log")}`) });
    expect(await store.entries()).toEqual([]);
  });
});

describe("parseOsRelease", () => {
  it("reads quoted, single-quoted and bare values, escapes and comments", () => {
    expect(parseOsRelease('# comment\nNAME="Garden \\"Linux\\""\nID=gardenlinux\nVERSION_ID=\'1592.1\'\n\nnot a line\n')).toEqual({
      NAME: 'Garden "Linux"',
      ID: "gardenlinux",
      VERSION_ID: "1592.1",
    });
  });
});
