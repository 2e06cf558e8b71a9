import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyContent } from "../../src/content/verify.ts";
import { parseMirrorConfig, parseMirrorFlag, pullEndpoints, readMirrorConfig } from "../../src/registry/mirrors.ts";
import { openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { makeBootImage, publishWithSkopeo, randomBytesFile, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { readAll } from "./helpers.ts";

describe("mirror configuration", () => {
  it("reads the mirror tables of a registries.conf and ignores the rest", () => {
    const config = parseMirrorConfig(`
unqualified-search-registries = ["docker.io"]  # ignored
short-name-mode = "enforcing"

[[registry]]
prefix = "ghcr.io/gardenlinux"
location = "ghcr.io/gardenlinux"
blocked = false

[[registry.mirror]]
location = "cache.local:5000/ghcr"   # a namespace on the cache
insecure = true

[[registry.mirror]]
location = "backup.local"

[[registry]]
location = "quay.io"

[aliases]
"boot" = "ghcr.io/gardenlinux/gardenlinux"
`);
    expect(config.rules).toEqual([
      {
        prefix: "ghcr.io/gardenlinux",
        mirrors: [
          { location: "cache.local:5000/ghcr", insecure: true },
          { location: "backup.local", insecure: false },
        ],
      },
    ]);
    expect(pullEndpoints(config, "ghcr.io", "gardenlinux/gardenlinux")).toEqual([
      { registry: "cache.local:5000", repository: "ghcr/gardenlinux", insecure: true, mirror: true },
      // As in containers-registries.conf(5): the matched prefix is replaced by the mirror's location.
      { registry: "backup.local", repository: "gardenlinux", insecure: false, mirror: true },
      { registry: "ghcr.io", repository: "gardenlinux/gardenlinux", insecure: false, mirror: false },
    ]);
    // Outside the prefix, and a look-alike host, go to the origin only.
    expect(pullEndpoints(config, "ghcr.io", "other/image")).toHaveLength(1);
    expect(pullEndpoints(config, "ghcr.io.evil.net", "gardenlinux/gardenlinux")).toHaveLength(1);
  });

  it("reads --registry-mirror ORIGIN=MIRROR[,MIRROR]", () => {
    expect(parseMirrorFlag("ghcr.io=http://10.0.0.5:5000,cache.local")).toEqual({
      prefix: "ghcr.io",
      mirrors: [
        { location: "10.0.0.5:5000", insecure: true },
        { location: "cache.local", insecure: false },
      ],
    });
    expect(() => parseMirrorFlag("ghcr.io")).toThrow(/ORIGIN=MIRROR/);
  });

  it("reports a malformed file with its line", () => {
    expect(() => parseMirrorConfig("[[registry]]\nlocation = nonsense value\n")).toThrow(/line 2/);
    expect(() => parseMirrorConfig("[[registry.mirror]]\nlocation = \"x\"\n")).toThrow(/outside a \[\[registry\]\]/);
  });
});

describe("a pull-through cache as a configured mirror (real registries)", () => {
  let work: string;
  let origin: RunningRegistry;
  let cache: RunningRegistry;
  let layout: WrittenLayout;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-mirror-"));
    const rootfs = await randomBytesFile(join(work, "rootfs"), 3 * 1024 * 1024);
    layout = await writeOciLayout(join(work, "layout"), {
      manifests: [
        makeBootImage({ dialect: "onmetal", tag: "1.0", kernel: { bytes: "kernel" }, initrd: { bytes: "initrd" }, rootfs: { file: rootfs.path } }),
      ],
    });
    origin = await startRegistry();
    await publishWithSkopeo(layout.directory, "1.0", origin, "gardenlinux/boot");
    cache = await startRegistry({ proxy: { remoteUrl: origin.url } });
  });

  afterAll(async () => {
    await cache.stop();
    await origin.stop();
    await rm(work, { recursive: true, force: true });
  });

  it("pulls through the mirror, and falls back to the origin once the mirror is gone", async () => {
    const configFile = join(work, "registries.conf");
    await writeFile(configFile, `[[registry]]\nlocation = "${origin.host}"\n\n[[registry.mirror]]\nlocation = "${cache.host}"\n`);
    const log: string[] = [];
    const options: RegistryOptions = {
      env: {},
      homeDir: work,
      mirrors: readMirrorConfig(configFile),
      retry: { attempts: 2, baseDelayMs: 1 },
      log: (line) => log.push(line),
    };
    const manifest = layout.manifests[0]!;
    const rootfs = manifest.layers[0]!;
    const pull = async () => {
      const repository = openRepository({ registry: origin.host, repository: "gardenlinux/boot" }, options);
      const descriptor = await repository.resolve("1.0");
      expect(descriptor.digest).toBe(manifest.descriptor.digest);
      const fetched = await repository.fetch(rootfs);
      expect((await readAll(fetched.stream.pipeThrough(verifyContent(rootfs)))).byteLength).toBe(rootfs.size);
    };

    await pull();
    await cache.waitForLog(new RegExp(`"GET /v2/gardenlinux/boot/blobs/${rootfs.digest}[^"]*" 200`));
    const cached = cache.requests().filter((request) => request.userAgent.startsWith("ociboot"));
    expect(cached.some((request) => request.uri === "/v2/gardenlinux/boot/manifests/1.0" && request.status === 200)).toBe(true);
    expect(cached.some((request) => request.uri === `/v2/gardenlinux/boot/blobs/${rootfs.digest}` && request.status === 200)).toBe(true);
    // The origin was reached by the cache only, not by us.
    expect(origin.requests().filter((request) => request.userAgent.startsWith("ociboot"))).toEqual([]);

    await cache.stop();
    await pull();
    await origin.waitForLog(new RegExp(`"GET /v2/gardenlinux/boot/blobs/${rootfs.digest}[^"]*" 200 \\S+ "[^"]*" "ociboot`));
    const direct = origin.requests().filter((request) => request.userAgent.startsWith("ociboot"));
    expect(direct.some((request) => request.uri === `/v2/gardenlinux/boot/blobs/${rootfs.digest}`)).toBe(true);
    expect(log.join("\n")).toMatch(new RegExp(`mirror ${cache.host.replace(/\./g, "\\.")} failed .*trying the next source`));
  });
});
