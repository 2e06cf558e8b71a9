import { readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type FaultServer, sendRegistryError, startFaultServer } from "../harness/fault-server.ts";
import { archiveLayout, makeBootImage, publishWithSkopeo, type WrittenLayout, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
let layout: WrittenLayout;
let repository: string;

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work });

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "ociboot-remote-reads-"));
  const image = (architecture: string) =>
    makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${architecture}` }, initrd: { bytes: `initrd ${architecture}` }, rootfs: { bytes: `rootfs ${architecture}` } });
  layout = await writeOciLayout(join(work, "layout"), {
    manifests: [{ ...image("amd64"), tag: "amd64" }, { ...image("arm64"), tag: "arm64" }],
    indexes: [
      {
        tag: "today",
        manifests: [
          { manifest: 0, platform: { os: "linux", architecture: "amd64" } },
          { manifest: 1, platform: { os: "linux", architecture: "arm64" } },
        ],
      },
    ],
  });
  repository = `${registry.host}/os/metal`;
  for (const tag of ["today", "amd64", "arm64"]) await publishWithSkopeo(layout.directory, tag, registry, "os/metal");
  await archiveLayout(layout.directory, join(work, "metal.oci.tar.gz"));
});
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const index = () => layout.indexes[0]!;
const arm64 = () => layout.manifests[1]!;

describe("tags", () => {
  it("lists a registry repository's tags, one a line, and as JSON", async () => {
    const text = await cli("tags", repository);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout.split("\n").filter(Boolean).sort()).toEqual(["amd64", "arm64", "today"]);
    const json = await cli("tags", repository, "--json");
    expect(JSON.parse(json.stdout)).toEqual({ name: repository, tags: expect.arrayContaining(["amd64", "arm64", "today"]) });
  });

  it("lists the reference names of oci:DIR and oci-archive:FILE", async () => {
    for (const source of [`oci:${layout.directory}`, "oci-archive:metal.oci.tar.gz"]) {
      const result = await cli("tags", source);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe("amd64\narm64\ntoday\n");
    }
  });

  it("refuses a tag or digest where a repository is expected, and names the repository that is missing", async () => {
    const tagged = await cli("tags", `${repository}:today`);
    expect(tagged.code).toBe(2);
    expect(tagged.stderr).toContain("(see ociboot tags --help)");
    expect((await cli("tags", `${registry.host}/no/such`)).code).toBe(3);
  });
});

describe("tags against a registry that pages (distribution 2.8 ignores n and last)", () => {
  let server: FaultServer;
  const pages = [["a", "b"], ["c", "d"], ["e"]];

  beforeAll(async () => {
    server = await startFaultServer(() => undefined);
  });
  afterAll(async () => {
    await server?.stop();
  });

  function pagingHandler(link: (page: number) => string | undefined) {
    return (request: { url: string }, response: import("node:http").ServerResponse) => {
      const url = new URL(request.url, "http://x");
      if (url.pathname === "/v2/") return void response.writeHead(200, { "content-type": "application/json" }).end("{}");
      if (url.pathname !== "/v2/paged/tags/list") return sendRegistryError(response, 404, "NAME_UNKNOWN", "no such repository");
      const page = Number(url.searchParams.get("page") ?? "0");
      const next = link(page);
      response.writeHead(200, { "content-type": "application/json", ...(next === undefined ? {} : { link: next }) });
      response.end(JSON.stringify({ name: "paged", tags: pages[page] ?? [`t${page}`] }));
    };
  }

  it("follows every Link page, in order", async () => {
    server.handle(pagingHandler((page) => (page + 1 < pages.length ? `</v2/paged/tags/list?n=2&page=${page + 1}>; rel="next"` : undefined)));
    const result = await cli("tags", `${server.host}/paged`);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe("a\nb\nc\nd\ne\n");
    expect(server.requests.filter((request) => request.url.includes("tags/list"))).toHaveLength(3);
  });

  it("stops a registry whose pages never end, and one that sends the next page elsewhere", async () => {
    server.handle(pagingHandler((page) => `</v2/paged/tags/list?page=${page + 1}>; rel="next"`));
    const endless = await cli("tags", `${server.host}/paged`);
    expect(endless.code).toBe(9);
    expect(endless.stderr).toMatch(/more than \d+ pages/);
    expect(endless.stdout).toBe("");

    server.handle(pagingHandler(() => `<http://127.0.0.2:1/v2/paged/tags/list?page=1>; rel="next"`));
    const elsewhere = await cli("tags", `${server.host}/paged`);
    expect(elsewhere.code).toBe(9);
    expect(elsewhere.stderr).toContain("another origin");
    expect(elsewhere.stdout).toBe("");
  });
});

describe("manifest and digest", () => {
  it("print the index's exact bytes and digest from a registry, oci:DIR and oci-archive:FILE", async () => {
    for (const source of [`${repository}:today`, `oci:${layout.directory}:today`, "oci-archive:metal.oci.tar.gz:today"]) {
      const manifest = await cli("manifest", source);
      expect(manifest.code, manifest.stderr).toBe(0);
      expect(manifest.stdout).toBe(index().bytes.toString("utf8"));
      const digest = await cli("digest", source);
      expect(digest.stdout).toBe(`${index().descriptor.digest}\n`);
    }
  });

  it("pick a platform's manifest from an index, and print its descriptor", async () => {
    const manifest = await cli("manifest", `${repository}:today`, "--platform", "linux/arm64");
    expect(manifest.code, manifest.stderr).toBe(0);
    expect(manifest.stdout).toBe(arm64().bytes.toString("utf8"));
    expect((await cli("digest", `${repository}:today`, "--platform", "linux/arm64")).stdout).toBe(`${arm64().descriptor.digest}\n`);

    const descriptor = JSON.parse((await cli("manifest", `${repository}:today`, "--platform", "linux/arm64", "--descriptor")).stdout) as Record<string, unknown>;
    expect(descriptor).toEqual({ ...arm64().descriptor, platform: { os: "linux", architecture: "arm64" } });
    const digestJson = JSON.parse((await cli("digest", `${repository}:today`, "--json")).stdout) as Record<string, unknown>;
    expect(digestJson).toEqual({ mediaType: index().descriptor.mediaType, digest: index().descriptor.digest, size: index().descriptor.size });
    const unmatched = await cli("manifest", `${repository}:today`, "--platform", "linux/s390x");
    expect(unmatched.code).toBe(3);
  });

  it("print nothing and exit 5 when the registry serves bytes that do not match the digest", async () => {
    const other = await mkdtemp(join(work, "corrupt-"));
    const written = await writeOciLayout(other, {
      manifests: [{ ...makeBootImage({ dialect: "onmetal", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" } }), tag: "v1" }],
    });
    await publishWithSkopeo(other, "v1", registry, "os/corrupt");
    const descriptor = written.manifests[0]!.descriptor;
    const path = registry.blobDataPath(descriptor.digest);
    const bytes = await readFile(path, "utf8");
    const corrupted = bytes.replace('"size":1', '"size":2');
    expect(corrupted).not.toBe(bytes);
    await writeFile(path, corrupted);

    for (const reference of [`${registry.host}/os/corrupt:v1`, `${registry.host}/os/corrupt@${descriptor.digest}`]) {
      for (const command of ["manifest", "digest"]) {
        const result = await cli(command, reference);
        expect(result.code, `${command} ${reference}`).toBe(5);
        expect(result.stdout).toBe("");
      }
    }
  });
});
