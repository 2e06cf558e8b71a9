import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, writeOciLayout, type WrittenLayout, publishWithSkopeo } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

const COMMAND_LINE = "console=ttyS0 root=/dev/vda ro";
const KERNEL = "K".repeat(300_000);
const INITRD = "I".repeat(200_000);
const ROOTFS = Buffer.from(Array.from({ length: 1_500_000 }, (_, position) => (position * 7919) % 251));

describe("verify in the field: offline folders, archives cut or corrupted", () => {
  let work: string;
  let registry: RunningRegistry;
  let layout: WrittenLayout;
  let reference: string;
  let digest: string;
  /** A folder fetched while the registry was up, with the kernel renamed. */
  let fetched: string;
  /** A folder fetched through a multi-arch index. */
  let fetchedFromIndex: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-verify-field-"));
    registry = await startRegistry();
    layout = await writeOciLayout(join(work, "layout"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: KERNEL }, initrd: { bytes: INITRD }, rootfs: { bytes: ROOTFS }, commandLine: COMMAND_LINE })],
      indexes: [{ tag: "multi", manifests: [{ manifest: 0, platform: { os: "linux", architecture: "arm64" } }] }],
    });
    ({ reference } = await publishWithSkopeo(layout.directory, "v1", registry, "field/os"));
    await publishWithSkopeo(layout.directory, "multi", registry, "field/os");
    fetchedFromIndex = join(work, "fetched-from-index");
    const fromIndex = await ociboot(["fetch", `${registry.host}/field/os:multi`, "--platform", "linux/arm64", "-o", fetchedFromIndex, "--quiet"]);
    expect(fromIndex.code, fromIndex.stderr).toBe(0);
    digest = layout.manifests[0]!.descriptor.digest;
    fetched = join(work, "fetched");
    const result = await ociboot(["fetch", reference, "-o", fetched, "--name", "kernel=bzImage", "--quiet"]);
    expect(result.code, result.stderr).toBe(0);
    // Everything below runs with the registry gone.
    await registry.stop();
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("verify --dir DIR needs no reference and no registry: manifest.json and the names fetch used", async () => {
    const result = await ociboot(["verify", "--dir", fetched]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(`Checking against ${join(fetched, "manifest.json")} (${digest})`);
    expect(result.stdout).toMatch(/^OK {6}kernel bzImage$/m);
    expect(result.stdout).toMatch(/^OK {6}cmdline cmdline$/m);
    expect(result.stdout).toContain("All 4 items verified.");
  });

  it("verify REF@digest --dir DIR with the registry down uses manifest.json when it is the pinned digest", async () => {
    const pinned = await ociboot(["verify", `${registry.host}/field/os@${digest}`, "--dir", fetched]);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(pinned.stdout).toContain("All 4 items verified.");
    // A tag, or a pin that is not this manifest, proves nothing offline: the registry must answer, and it is down.
    const byTag = await ociboot(["verify", reference, "--dir", fetched]);
    expect(byTag.code).toBe(7);
    const otherPin = await ociboot(["verify", `${registry.host}/field/os@sha256:${"0".repeat(64)}`, "--dir", fetched]);
    expect(otherPin.code).toBe(7);
  });

  it("verify REF@<index digest> --dir DIR with the registry down checks the saved index chain down to manifest.json", async () => {
    const indexDigest = layout.indexes[0]!.descriptor.digest;
    const pinned = await ociboot(["verify", `${registry.host}/field/os@${indexDigest}`, "--dir", fetchedFromIndex]);
    expect(pinned.code, pinned.stderr).toBe(0);
    expect(pinned.stdout).toContain("All 4 items verified.");
    // A record whose saved index is not the pinned one proves nothing: back to the registry, which is down.
    const tampered = join(work, "tampered-index");
    await cp(fetchedFromIndex, tampered, { recursive: true });
    const recordPath = join(tampered, "ociboot-fetch.json");
    const record = JSON.parse(await readFile(recordPath, "utf8")) as { indexes: Array<{ data: string }> };
    const index = JSON.parse(Buffer.from(record.indexes[0]!.data, "base64").toString("utf8")) as { annotations?: Record<string, string> };
    record.indexes[0]!.data = Buffer.from(JSON.stringify({ ...index, annotations: { forged: "yes" } })).toString("base64");
    await writeFile(recordPath, JSON.stringify(record));
    const forged = await ociboot(["verify", `${registry.host}/field/os@${indexDigest}`, "--dir", tampered]);
    expect(forged.code).toBe(7);
  });

  it("verify REF --dir DIR against an image uses the names fetch recorded, unless --name says otherwise", async () => {
    const recorded = await ociboot(["verify", `oci:${layout.directory}:v1`, "--dir", fetched]);
    expect(recorded.code, recorded.stderr).toBe(0);
    expect(recorded.stdout).toMatch(/^OK {6}kernel bzImage$/m);
    const overridden = await ociboot(["verify", `oci:${layout.directory}:v1`, "--dir", fetched, "--name", "kernel=vmlinuz"]);
    expect(overridden.code).toBe(5);
    expect(overridden.stdout).toMatch(/^FAILED  kernel vmlinuz: missing$/m);
    expect(overridden.stderr).toContain("1 of 4 items do not match (vmlinuz)");
  });

  it("says missing apart from changed, and shows the actual digest and size", async () => {
    const copy = join(work, "damaged");
    await cp(fetched, copy, { recursive: true });
    await rm(join(copy, "initrd"));
    await writeFile(join(copy, "bzImage"), "not the kernel");
    const result = await ociboot(["verify", "--dir", copy]);
    expect(result.code).toBe(5);
    expect(result.stdout).toMatch(/^FAILED  initrd initrd: missing$/m);
    const line = result.stdout.split("\n").find((text) => text.startsWith("FAILED  kernel bzImage: changed: it is sha256:"));
    expect(line).toBeDefined();
    expect(line).toContain(`sha256:${createHash("sha256").update("not the kernel").digest("hex")} (14 bytes)`);
    // A failed --json run prints one document, the error, with the report in its details (docs/json-errors.md).
    const failure = JSON.parse((await ociboot(["verify", "--dir", copy, "--json"])).stdout) as {
      error: { code: string; details: { report: { items: Array<{ name: string; state: string; actualDigest?: string }> } } };
    };
    expect(failure.error.code).toBe("INTEGRITY");
    const json = failure.error.details.report;
    expect(json.items.find((item) => item.name === "initrd")).toMatchObject({ state: "missing" });
    expect(json.items.find((item) => item.name === "bzImage")).toMatchObject({ state: "changed", actualDigest: expect.stringMatching(/^sha256:/) });
  });

  it("fails on a folder fetch did not write, and with no folder and no image", async () => {
    const notFetched = await ociboot(["verify", "--dir", work]);
    expect(notFetched.code).toBe(3);
    expect(notFetched.stderr).toContain("no manifest.json");
    const nothing = await ociboot(["verify"]);
    expect(nothing.code).toBe(2);
  });

  describe("archives", () => {
    let archive: string;

    beforeAll(async () => {
      archive = join(work, "image.oci.tar");
      const copied = await ociboot(["copy", `oci:${layout.directory}:v1`, `oci-archive:${archive}`, "--quiet"]);
      expect(copied.code, copied.stderr).toBe(0);
      for (const suffix of ["xz", "gz"]) {
        const result = await ociboot(["copy", `oci:${layout.directory}:v1`, `oci-archive:${archive}.${suffix}`, "--quiet"]);
        expect(result.code, result.stderr).toBe(0);
      }
    });

    it("verify oci-archive:FILE lists its items as verify oci:DIR does, and --json prints the report", async () => {
      const human = await ociboot(["verify", `oci-archive:${archive}`]);
      expect(human.code, human.stderr).toBe(0);
      const onlyV1 = join(work, "only-v1");
      expect((await ociboot(["copy", `oci:${layout.directory}:v1`, `oci:${onlyV1}:v1`, "--quiet"])).code).toBe(0);
      const layoutReport = await ociboot(["verify", `oci:${onlyV1}`]);
      expect(human.stdout).toBe(layoutReport.stdout);
      const json = JSON.parse((await ociboot(["verify", `oci-archive:${archive}`, "--json"])).stdout) as { ok: boolean; items: Array<{ name: string; ok: boolean }> };
      expect(json.ok).toBe(true);
      expect(json.items.map((item) => item.name)).toContain(digest);
      expect(json.items).toHaveLength(5);
    });

    it("a corrupted blob in an archive is one FAILED item among the others, not the end of the report", async () => {
      const bytes = await readFile(archive);
      const rootfs = layout.manifests[0]!.layers[0]!;
      const at = bytes.indexOf(ROOTFS.subarray(0, 4096)) + 100_000;
      bytes[at] = (bytes[at] ?? 0) ^ 0xff;
      const damaged = join(work, "damaged.oci.tar");
      await writeFile(damaged, bytes);
      const result = await ociboot(["verify", `oci-archive:${damaged}`]);
      expect(result.code).toBe(5);
      expect(result.stdout).toMatch(new RegExp(`^FAILED  ${rootfs.digest}: .*content hashes to sha256:`, "m"));
      expect(result.stdout.match(/^OK /gm)).toHaveLength(4);
      expect(result.stdout).not.toMatch(/ociboot-archive-/);
      const failure = JSON.parse((await ociboot(["verify", `oci-archive:${damaged}`, "--json"])).stdout) as {
        error: { details: { report: { ok: boolean; items: Array<{ ok: boolean }> } } };
      };
      const json = failure.error.details.report;
      expect(json.ok).toBe(false);
      expect(json.items.filter((item) => !item.ok)).toHaveLength(1);
    });

    for (const [suffix, label, env] of [
      ["", "a plain tar", {}],
      [".gz", "a .tar.gz", {}],
      [".xz", "a .tar.xz with system xz", {}],
      [".xz", "a .tar.xz with the WebAssembly decoder (no xz on PATH)", { PATH: "/nonexistent" }],
    ] as const) {
      it(`a cut ${label} is exit 5 naming the archive, for verify and import`, async () => {
        const cut = join(work, `cut-${label.replace(/\W+/g, "-")}.oci.tar${suffix}`);
        const whole = await readFile(`${archive}${suffix}`);
        await writeFile(cut, whole.subarray(0, Math.floor(whole.byteLength * 0.6)));
        for (const args of [["verify", `oci-archive:${cut}`], ["--store-path", join(work, "imported"), "import", cut]]) {
          const result = await ociboot(args, { env });
          expect(result.code, result.stderr).toBe(5);
          expect(result.stderr).toContain(`Cannot read archive ${cut}: it is truncated or corrupt`);
          expect(result.stderr).not.toMatch(/get_next_output|ociboot-archive-|Cannot write a blob/);
        }
        expect(existsSync(join(work, "imported", "index.json"))).toBe(false);
      });
    }
  });
});
