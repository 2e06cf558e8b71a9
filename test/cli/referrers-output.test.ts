import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { formatReferrerTree, pinnedLocation } from "../../src/cli/commands/referrers-output.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import type { ReferrerListing } from "../../src/ops/referrers.ts";
import { runInProcess } from "./cli-context.ts";

const digest = (character: string) => `sha256:${character.repeat(64)}` as Descriptor["digest"];
const manifest = (character: string, artifactType?: string): Descriptor => ({
  mediaType: "application/vnd.oci.image.manifest.v1+json",
  digest: digest(character),
  size: 500,
  ...(artifactType === undefined ? {} : { artifactType }),
});
const titled = (title: string): Descriptor => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: digest("f"), size: 1, annotations: { "org.opencontainers.image.title": title } });

describe("pinnedLocation", () => {
  it("pins a registry reference by digest without its tag, and a store location as oci:DIR:DIGEST", () => {
    expect(pinnedLocation("127.0.0.1:5000/os/metal:v1", digest("a"))).toBe(`127.0.0.1:5000/os/metal@${digest("a")}`);
    expect(pinnedLocation(`docker://ghcr.io/x/y@${digest("b")}`, digest("b"))).toBe(`ghcr.io/x/y@${digest("b")}`);
    expect(pinnedLocation("oci:./onmetal:ghcr.io/x/y:1", digest("a"))).toBe(`oci:./onmetal:${digest("a")}`);
  });
});

describe("formatReferrerTree", () => {
  it("groups referrers by artifact type in the order first seen, with the titles of their files", () => {
    const listing: ReferrerListing = {
      subject: manifest("a"),
      referrers: [
        { descriptor: manifest("1", "build/log"), layers: [titled("metal.log")] },
        { descriptor: manifest("2", "build/info"), layers: [titled("metal.os-release"), titled("metal.manifest")] },
        { descriptor: manifest("3", "build/log"), layers: [{ ...titled("x"), annotations: {} }] },
        { descriptor: manifest("4") },
      ],
    };
    expect(formatReferrerTree(listing, "127.0.0.1:5000/os/metal:v1")).toBe(
      [
        `127.0.0.1:5000/os/metal@${digest("a")}`,
        "├── build/log",
        `│   ├── ${digest("1")}  metal.log`,
        `│   └── ${digest("3")}`,
        "├── build/info",
        `│   └── ${digest("2")}  metal.os-release, metal.manifest`,
        "└── <no artifact type>",
        `    └── ${digest("4")}`,
        "",
      ].join("\n"),
    );
  });

  it("prints the subject alone when nothing refers to it", () => {
    expect(formatReferrerTree({ subject: manifest("a"), referrers: [] }, "oci:s:t")).toBe(`oci:s:${digest("a")}\n`);
  });
});

describe("attach options", () => {
  let work: string;
  const cli = (argv: string[], env: Record<string, string> = {}) => runInProcess(argv, { cwd: work, env });

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-attach-cli-"));
    for (const name of ["kernel", "initrd", "rootfs", "metal.log"]) await writeFile(join(work, name), `${name} bytes`);
    const built = await cli(["--store-path", "s", "build", "--kernel-file", "kernel", "--initramfs-file", "initrd", "--rootfs-file", "rootfs", "--tag", "example.com/os:1"]);
    expect(built.code, built.stderr).toBe(0);
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("dates the artifact by SOURCE_DATE_EPOCH and refuses one that is not whole seconds", async () => {
    const dated = await cli(["attach", "oci:s:example.com/os:1", "metal.log", "--artifact-type", "build/log", "--json"], { SOURCE_DATE_EPOCH: "1700000000" });
    expect(JSON.parse(dated.stdout)).toMatchObject({ annotations: { "org.opencontainers.image.created": "2023-11-14T22:13:20Z" } });
    const bad = await cli(["attach", "oci:s:example.com/os:1", "metal.log", "--artifact-type", "build/log"], { SOURCE_DATE_EPOCH: "yesterday" });
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining("Cannot use SOURCE_DATE_EPOCH") });
  });

  it("leaves the date out with --no-created, and refuses an annotation that is not key=value or nothing to attach", async () => {
    const undated = await cli(["attach", "oci:s:example.com/os:1", "metal.log", "--artifact-type", "build/log", "--no-created", "--json"]);
    expect((JSON.parse(undated.stdout) as { annotations?: unknown }).annotations).toBeUndefined();
    expect((await cli(["attach", "oci:s:example.com/os:1", "metal.log", "--artifact-type", "build/log", "-a", "novalue"])).code).toBe(2);
    expect((await cli(["attach", "oci:s:example.com/os:1", "--artifact-type", "build/log"])).code).toBe(2);
    const annotationOnly = await cli(["attach", "oci:s:example.com/os:1", "--artifact-type", "build/signed", "-a", "signed=yes", "--json"]);
    expect(JSON.parse(annotationOnly.stdout)).toMatchObject({ artifactType: "build/signed", annotations: { signed: "yes" }, layers: [] });
  });
});
