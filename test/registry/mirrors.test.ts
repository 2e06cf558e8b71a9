import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyContent } from "../../src/content/verify.ts";
import { parseMirrorConfig, parseMirrorFlag, pullEndpoints, readMirrorConfig } from "../../src/registry/mirrors.ts";
import { openRepository, type RegistryOptions } from "../../src/registry/repository.ts";
import { makeBootImage, publishWithSkopeo, randomBytesFile, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { readAll } from "./helpers.ts";
import { runInProcess } from "../cli/cli-context.ts";

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

  it("reads both array-of-tables forms alike: [[registry.mirror]] and mirror = [{…}]", () => {
    const tables = parseMirrorConfig('[[registry]]\nlocation = "ghcr.io"\n[[registry.mirror]]\nlocation = "a.local"\ninsecure = true\n[[registry.mirror]]\nlocation = "b.local"\n');
    const inline = parseMirrorConfig(`
[[registry]]
location = "ghcr.io"
mirror = [
  { location = "a.local", insecure = true },
  { location = "b.local" },
]
`);
    const expected = [{ prefix: "ghcr.io", mirrors: [{ location: "a.local", insecure: true }, { location: "b.local", insecure: false }] }];
    expect(tables.rules).toEqual(expected);
    expect(inline.rules).toEqual(expected);
    // registry as an inline array of tables too
    expect(parseMirrorConfig('registry = [{ location = "ghcr.io", mirror = [{ location = "a.local", insecure = true }, { location = "b.local" }] }]\n').rules).toEqual(expected);
  });

  it("rewrites the origin when prefix and location differ, and replaces the matched prefix in mirrors", () => {
    const config = parseMirrorConfig(`
[[registry]]
prefix = "example.com/os"
location = "internal.local:5000/mirror/os"
[[registry.mirror]]
location = "cache.local/os-cache"
`);
    expect(pullEndpoints(config, "example.com", "os/metal")).toEqual([
      { registry: "cache.local", repository: "os-cache/metal", insecure: false, mirror: true },
      { registry: "internal.local:5000", repository: "mirror/os/metal", insecure: false, mirror: false },
    ]);
    // Without mirrors the table still rewrites; outside the prefix nothing changes.
    const remapOnly = parseMirrorConfig('[[registry]]\nprefix = "example.com"\nlocation = "internal.local"\n');
    expect(pullEndpoints(remapOnly, "example.com", "os/metal")).toEqual([{ registry: "internal.local", repository: "os/metal", insecure: false, mirror: false }]);
    expect(pullEndpoints(config, "example.com", "other/metal")).toEqual([{ registry: "example.com", repository: "other/metal", insecure: false, mirror: false }]);
  });

  it("mirror-by-digest-only: tags resolve at the origin, content named by digest may come from the mirror", () => {
    const config = parseMirrorConfig('[[registry]]\nlocation = "ghcr.io"\nmirror-by-digest-only = true\nmirror = [{ location = "cache.local", pull-from-mirror = "tag-only" }]\n');
    expect(pullEndpoints(config, "ghcr.io", "os", { byDigest: false }).map((endpoint) => endpoint.registry)).toEqual(["ghcr.io"]);
    // mirror-by-digest-only wins over the mirror's own pull-from-mirror, as in containers-image.
    expect(pullEndpoints(config, "ghcr.io", "os", { byDigest: true }).map((endpoint) => endpoint.registry)).toEqual(["cache.local", "ghcr.io"]);
    const perMirror = parseMirrorConfig(
      '[[registry]]\nlocation = "ghcr.io"\nmirror = [{ location = "digests.local", pull-from-mirror = "digest-only" }, { location = "tags.local", pull-from-mirror = "tag-only" }, { location = "all.local", pull-from-mirror = "all" }]\n',
    );
    expect(pullEndpoints(perMirror, "ghcr.io", "os", { byDigest: true }).map((endpoint) => endpoint.registry)).toEqual(["digests.local", "all.local", "ghcr.io"]);
    expect(pullEndpoints(perMirror, "ghcr.io", "os", { byDigest: false }).map((endpoint) => endpoint.registry)).toEqual(["tags.local", "all.local", "ghcr.io"]);
  });

  it("a wildcard prefix selects mirrors for subdomains and loses to an exact match", () => {
    const config = parseMirrorConfig('[[registry]]\nprefix = "*.example.com"\nmirror = [{ location = "cache.local" }]\n[[registry]]\nprefix = "special.example.com"\nmirror = [{ location = "special.local" }]\n');
    expect(pullEndpoints(config, "eu.example.com", "os").map((endpoint) => `${endpoint.registry}/${endpoint.repository}`)).toEqual(["cache.local/os", "eu.example.com/os"]);
    expect(pullEndpoints(config, "special.example.com", "os").map((endpoint) => endpoint.registry)).toEqual(["special.local", "special.example.com"]);
    expect(pullEndpoints(config, "example.com", "os")).toHaveLength(1);
  });

  it("loads every key of the format, version 1 lists included, using only the mirror ones", () => {
    const config = parseMirrorConfig(`
unqualified-search-registries = ["docker.io", "quay.io"]
short-name-mode = "permissive"
credential-helpers = ["containers-auth.json", "secretservice"]
additional-layer-store-auth-helper = "helper"

[[registry]]
prefix = "docker.io"
location = "docker.io"
insecure = false
blocked = true
[[registry.mirror]]
location = "cache.local"

[aliases]
"fedora" = "registry.fedoraproject.org/fedora"
`);
    expect(config.rules).toEqual([{ prefix: "docker.io", mirrors: [{ location: "cache.local", insecure: false }] }]);
    expect(parseMirrorConfig('[registries.search]\nregistries = ["docker.io"]\n[registries.insecure]\nregistries = []\n[registries.block]\nregistries = ["evil.io"]\n').rules).toEqual([]);
  });

  it.skipIf(!existsSync("/etc/containers/registries.conf"))("loads this machine's /etc/containers/registries.conf and its drop-ins", async () => {
    const files = ["/etc/containers/registries.conf"];
    if (existsSync("/etc/containers/registries.conf.d")) {
      for (const name of await readdir("/etc/containers/registries.conf.d")) if (name.endsWith(".conf")) files.push(join("/etc/containers/registries.conf.d", name));
    }
    for (const file of files) expect(() => readMirrorConfig(file), file).not.toThrow();
  });

  it("rejects a key the format does not have and a value of the wrong type, naming the line", () => {
    const misspelt = '# a comment\n[[registry]]\nlocation = "ghcr.io"\nmirror-by-digest = true\n';
    expect(() => parseMirrorConfig(misspelt, "r.conf")).toThrow('Cannot read registry configuration r.conf: line 4: registry[0].mirror-by-digest is not a [[registry]] setting');
    expect(() => parseMirrorConfig(misspelt)).toThrow(expect.objectContaining({ code: "USAGE" }));
    expect(() => parseMirrorConfig('[[registry]]\nlocation = "ghcr.io"\n\n[[registry.mirror]]\nlocation = "a"\ninsecure = "yes"\n')).toThrow(/line 6: registry\[0\]\.mirror\[0\]\.insecure must be true or false/);
    expect(() => parseMirrorConfig('[[registry]]\nlocation = "ghcr.io"\nmirror = [\n  { location = "a" },\n  { location = "b", insecur = true },\n]\n')).toThrow(/line 6: registry\[0\]\.mirror\[1\]\.insecur is not/);
    expect(() => parseMirrorConfig('mirror-by-digest-only = true\n')).toThrow(/line 1: mirror-by-digest-only is not a registries.conf setting/);
    expect(() => parseMirrorConfig('unqualified-search-registries = "docker.io"\n')).toThrow(/line 1: .* must be an array of strings/);
    expect(() => parseMirrorConfig('[[registry]]\nlocation = "x"\nmirror = [{ location = "a", pull-from-mirror = "never" }]\n')).toThrow(/line 3: .*pull-from-mirror must be "all"/);
    expect(() => parseMirrorConfig('[[registry]]\nlocation = nonsense value\n')).toThrow(/line 2/);
    expect(() => parseMirrorConfig('[[registry]]\ninsecure = true\n')).toThrow(/line 1: registry\[0\] has neither prefix nor location/);
    expect(() => parseMirrorConfig('[[registry]]\nlocation = "x"\n[[registry.mirror]]\ninsecure = true\n')).toThrow(/line 3: registry\[0\]\.mirror\[0\] has no location/);
  });

  it("a bad configuration file stops a command with exit 2 before any request", async () => {
    const work = await mkdtemp(join(tmpdir(), "ociboot-mirror-cli-"));
    try {
      await writeFile(join(work, "registries.conf"), '[[registry]]\nlocation = "127.0.0.1:1"\nmirrors = [{ location = "a" }]\n');
      const result = await runInProcess(["--registry-config", "registries.conf", "fetch", "127.0.0.1:1/os:1", "-o", "out"], { cwd: work });
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/registries\.conf: line 3: registry\[0\]\.mirrors is not a \[\[registry\]\] setting/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
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
