import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Digest } from "../../src/oci/digest.ts";
import { run, runOk } from "./commands.ts";
import {
  ONMETAL_MEDIA_TYPES,
  archiveLayout,
  REF_NAME_ANNOTATION,
  encodeManifest,
  fetchWithSkopeo,
  makeBootImage,
  onmetalConfigBytes,
  publishWithSkopeo,
  randomBytesFile,
  writeOciLayout,
} from "./images.ts";
import { startRegistry } from "./registry.ts";
import type { RunningRegistry } from "./registry.ts";

let workDirectory: string;
let registry: RunningRegistry;

beforeAll(async () => {
  workDirectory = await mkdtemp(join(tmpdir(), "ociboot-images-test-"));
  registry = await startRegistry();
});

afterAll(async () => {
  await registry.stop();
  await rm(workDirectory, { recursive: true, force: true });
});

async function opensslSha256(path: string): Promise<string> {
  const { stdout } = await runOk("openssl", ["dgst", "-sha256", "-r", path]);
  return `sha256:${stdout.split(" ")[0]}`;
}

describe("onmetal encoding", () => {
  // Test vector from the Garden Linux `_oci` README (docs/formats.md#onmetal-v1alpha1).
  const commandLine =
    "ro console=tty0 console=ttyS0,115200 earlyprintk=ttyS0,115200 consoleblank=0 cgroup_enable=memory swapaccount=1 security=apparmor";

  it("reproduces the published config blob and manifest byte for byte", async () => {
    const config = onmetalConfigBytes(commandLine);
    expect(config.length).toBe(147);
    const bootImage = makeBootImage({ kernel: { bytes: "" }, initrd: { bytes: "" }, rootfs: { bytes: "" }, commandLine, dialect: "onmetal" });
    const written = await writeOciLayout(join(workDirectory, "vector"), { manifests: [bootImage] });
    expect(written.manifests[0]?.config).toEqual({
      mediaType: ONMETAL_MEDIA_TYPES.config,
      digest: "sha256:41c46e4d7cec399eee96a20c7b3ba27b4cf4910eae915aa9bb7e1837f2982dd9",
      size: 147,
    });

    const manifest = encodeManifest({
      config: { mediaType: ONMETAL_MEDIA_TYPES.config, digest: "sha256:41c46e4d7cec399eee96a20c7b3ba27b4cf4910eae915aa9bb7e1837f2982dd9" as Digest, size: 147 },
      layers: [
        { mediaType: ONMETAL_MEDIA_TYPES.rootfs, digest: "sha256:44dd616962d17884bd3609443a3c62b94d423fd1513a40098ffa1a1f75495fd5" as Digest, size: 231536600 },
        { mediaType: ONMETAL_MEDIA_TYPES.initrd, digest: "sha256:3108caa582a70f3490723a654d93896840ea2ad09d3c06bb0c51ed83a60e0660" as Digest, size: 16583520 },
        { mediaType: ONMETAL_MEDIA_TYPES.kernel, digest: "sha256:d002d4426df1928be7646289e8a67f2851679e955cacbbc042295f5c6af80b69" as Digest, size: 13212832 },
      ],
      mediaTypeField: false,
    });
    expect(manifest.length).toBe(713);
    expect(createHash("sha256").update(manifest).digest("hex")).toBe("f0dcfde4f8b4b6033add31243096a4b560173cd9884be1e37c524c53219fa394");
  });

  it("writes an empty command line as {} and escapes HTML characters as Go does", () => {
    expect(onmetalConfigBytes("").toString()).toBe("{}");
    expect(onmetalConfigBytes(undefined).toString()).toBe("{}");
    expect(onmetalConfigBytes("a<b>&c").toString()).toBe('{"commandLine":"a\\u003cb\\u003e\\u0026c"}');
  });
});

describe("writeOciLayout", () => {
  it("writes a layout that skopeo reads, with blobs named by their digests", async () => {
    const directory = join(workDirectory, "boot-layout");
    const written = await writeOciLayout(directory, {
      manifests: [
        makeBootImage({
          kernel: { bytes: "kernel bytes" },
          initrd: { bytes: "initrd bytes" },
          rootfs: { bytes: "rootfs bytes" },
          commandLine: "console=ttyS0",
          dialect: "onmetal",
          tag: "1.0",
        }),
      ],
    });
    const manifest = written.manifests[0];
    if (manifest === undefined) throw new Error("no manifest written");
    expect(manifest.layers.map((layer) => layer.mediaType)).toEqual([
      ONMETAL_MEDIA_TYPES.rootfs,
      ONMETAL_MEDIA_TYPES.initrd,
      ONMETAL_MEDIA_TYPES.kernel,
    ]);
    expect(JSON.parse(manifest.bytes.toString())).not.toHaveProperty("mediaType");

    const { stdout } = await runOk("skopeo", ["inspect", "--raw", `oci:${directory}:1.0`]);
    expect(Buffer.from(stdout)).toEqual(manifest.bytes);
    for (const descriptor of [manifest.descriptor, manifest.config, ...manifest.layers]) {
      expect(await opensslSha256(join(directory, "blobs", "sha256", descriptor.digest.slice(7)))).toBe(descriptor.digest);
    }
    const index = JSON.parse(await readFile(join(directory, "index.json"), "utf8")) as { manifests: Array<Record<string, unknown>> };
    expect(index.manifests).toEqual([{ ...manifest.descriptor, annotations: { [REF_NAME_ANNOTATION]: "1.0" } }]);
    expect(await readFile(join(directory, "oci-layout"), "utf8")).toBe('{"imageLayoutVersion":"1.0.0"}');
  });

  it("publishes through skopeo with digests preserved, including a multi-platform index", async () => {
    const directory = join(workDirectory, "multi-arch");
    const artifact = (architecture: string) =>
      makeBootImage({
        kernel: { bytes: `kernel for ${architecture}` },
        initrd: { bytes: `initrd for ${architecture}` },
        rootfs: { bytes: `rootfs for ${architecture}` },
        dialect: "onmetal",
      });
    const written = await writeOciLayout(directory, {
      manifests: [artifact("amd64"), artifact("arm64")],
      indexes: [
        {
          tag: "multi",
          manifests: [
            { manifest: 0, platform: { os: "linux", architecture: "amd64" } },
            { manifest: 1, platform: { os: "linux", architecture: "arm64" } },
          ],
        },
      ],
    });
    const { reference } = await publishWithSkopeo(directory, "multi", registry, "boot/multi", "2.0");
    expect(reference).toBe(`${registry.host}/boot/multi:2.0`);

    const pulled = join(workDirectory, "multi-pulled");
    await fetchWithSkopeo(registry, "boot/multi", "2.0", pulled);
    const index = JSON.parse(await readFile(join(pulled, "index.json"), "utf8")) as { manifests: Array<{ digest: string }> };
    expect(index.manifests[0]?.digest).toBe(written.indexes[0]?.descriptor.digest);
    for (const manifest of written.manifests) {
      expect((await stat(join(pulled, "blobs", "sha256", manifest.descriptor.digest.slice(7)))).size).toBe(manifest.bytes.length);
    }
  });

  it("takes big layers from files and records annotations", async () => {
    const big = await randomBytesFile(join(workDirectory, "big.bin"), 3 * 1024 * 1024 + 17);
    const directory = join(workDirectory, "file-layout");
    const written = await writeOciLayout(directory, {
      manifests: [
        {
          tag: "files",
          config: { mediaType: "application/vnd.oci.empty.v1+json", bytes: "{}" },
          layers: [{ mediaType: "application/octet-stream", file: big.path, annotations: { "org.opencontainers.image.title": "big.bin" } }],
          artifactType: "application/vnd.example.files",
        },
      ],
    });
    expect(written.manifests[0]?.layers[0]).toEqual({
      mediaType: "application/octet-stream",
      digest: big.digest,
      size: big.size,
      annotations: { "org.opencontainers.image.title": "big.bin" },
    });
    expect(JSON.parse(written.manifests[0]?.bytes.toString() ?? "")).toMatchObject({ artifactType: "application/vnd.example.files" });
    expect(await opensslSha256(join(directory, "blobs", "sha256", big.digest.slice(7)))).toBe(big.digest);
  });
});

describe("archiveLayout", () => {
  let directory: string;
  let written: Awaited<ReturnType<typeof writeOciLayout>>;
  beforeAll(async () => {
    directory = join(workDirectory, "store");
    written = await writeOciLayout(directory, {
      manifests: [
        {
          ...makeBootImage({ kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, dialect: "onmetal" }),
          tag: "ghcr.io/example/boot:1.0",
          untaggedEntry: true,
        },
      ],
    });
  });

  it("lists an onmetal store's untagged build entry before its tag", async () => {
    const index = JSON.parse(await readFile(join(directory, "index.json"), "utf8")) as { manifests: Array<{ digest: string; annotations?: unknown }> };
    const digest = written.manifests[0]?.descriptor.digest;
    expect(index.manifests.map((entry) => [entry.digest, entry.annotations])).toEqual([
      [digest, undefined],
      [digest, { [REF_NAME_ANNOTATION]: "ghcr.io/example/boot:1.0" }],
    ]);
  });

  it("makes an oci-archive skopeo reads, reproducibly", async () => {
    const first = join(workDirectory, "store.tar");
    const second = join(workDirectory, "store-again.tar");
    await archiveLayout(directory, first);
    await archiveLayout(directory, second);
    expect(await readFile(first)).toEqual(await readFile(second));
    const { stdout } = await runOk("skopeo", ["inspect", "--raw", `oci-archive:${first}:ghcr.io/example/boot:1.0`]);
    expect(Buffer.from(stdout)).toEqual(written.manifests[0]?.bytes);
  });

  it("makes the Garden Linux shape: an onmetal/ folder with an empty ingest/, xz-compressed", async () => {
    const archive = join(workDirectory, "gardenlinux.oci.tar.xz");
    await archiveLayout(directory, archive, { folder: "onmetal", emptyDirectories: ["onmetal/ingest"], compression: "xz" });
    const { stdout } = await runOk("tar", ["--list", "--xz", "--file", archive]);
    const entries = stdout.trim().split("\n");
    expect(entries).toContain("onmetal/oci-layout");
    expect(entries).toContain("onmetal/index.json");
    expect(entries).toContain("onmetal/ingest/");
    expect(entries).toContain(`onmetal/blobs/sha256/${written.manifests[0]?.descriptor.digest.slice(7)}`);
    expect(entries.every((entry) => entry.startsWith("onmetal/"))).toBe(true);
  });
});

describe("randomBytesFile", () => {
  it("writes exactly the size asked, with the digest openssl computes", async () => {
    for (const size of [0, 1, 1024 * 1024, 2 * 1024 * 1024 + 3]) {
      const file = await randomBytesFile(join(workDirectory, `random-${size}`), size);
      expect((await stat(file.path)).size).toBe(size);
      expect(await opensslSha256(file.path)).toBe(file.digest);
    }
  });
});

describe("run", () => {
  it("passes input, environment and working directory, and reports non-zero exits", async () => {
    const result = await run("sh", ["-c", 'cat; echo "$GREETING"; pwd; echo oops >&2; exit 3'], {
      input: "from stdin\n",
      env: { GREETING: "hello" },
      cwd: workDirectory,
    });
    expect(result).toEqual({ code: 3, signal: null, stdout: `from stdin\nhello\n${workDirectory}\n`, stderr: "oops\n" });
  });

  it("removes variables set to undefined", async () => {
    const result = await run("sh", ["-c", 'echo "${HOME-unset}"'], { env: { HOME: undefined } });
    expect(result.stdout).toBe("unset\n");
  });

  it("kills a command that outlives its timeout", async () => {
    const started = Date.now();
    await expect(run("sleep", ["30"], { timeoutMs: 200 })).rejects.toThrow(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it("ends the command's descendants on timeout, so none keeps the output open", async () => {
    const started = Date.now();
    await expect(run("sh", ["-c", "sleep 30; echo never"], { timeoutMs: 200 })).rejects.toThrow(/timed out/);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
