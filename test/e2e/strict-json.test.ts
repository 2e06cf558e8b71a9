import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { publishWithSkopeo } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

const CONFIG = Buffer.from('{"commandLine":"console=ttyS0"}');
const KERNEL = Buffer.from("K".repeat(4096));
const VMLINUZ = "application/vnd.onmetal.image.vmlinuz.v1alpha1.vmlinuz";
const CONFIG_TYPE = "application/vnd.onmetal.image.config.v1alpha1+json";
const hex = (bytes: Uint8Array | string) => createHash("sha256").update(bytes).digest("hex");
const describeBytes = (mediaType: string, bytes: Buffer) => JSON.stringify({ mediaType, digest: `sha256:${hex(bytes)}`, size: bytes.length });

/**
 * A manifest whose text names its layers twice: the first list holds the kernel, the second (what
 * Go's decoder and JSON.parse keep) passes the config blob off as the kernel.
 */
function manifestNamingLayersTwice(secondKey: string): Buffer {
  return Buffer.from(
    `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":${describeBytes(CONFIG_TYPE, CONFIG)},` +
      `"layers":[${describeBytes(VMLINUZ, KERNEL)}],"${secondKey}":[${describeBytes(VMLINUZ, CONFIG)}]}`,
  );
}

async function writeLayout(directory: string, manifest: Buffer, tag: string): Promise<void> {
  await mkdir(join(directory, "blobs", "sha256"), { recursive: true });
  for (const blob of [CONFIG, KERNEL, manifest]) await writeFile(join(directory, "blobs", "sha256", hex(blob)), blob);
  await writeFile(join(directory, "oci-layout"), '{"imageLayoutVersion":"1.0.0"}');
  const entry = { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: `sha256:${hex(manifest)}`, size: manifest.length, annotations: { "org.opencontainers.image.ref.name": tag } };
  await writeFile(join(directory, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
}

describe("JSON documents that name a member twice are refused", () => {
  let work: string;
  let registry: RunningRegistry;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-strict-json-"));
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  for (const secondKey of ["layers", "Layers"]) {
    it(`fetch from the registry: a manifest with "layers" and "${secondKey}" exits 5 and writes nothing`, async () => {
      const layout = join(work, `layout-${secondKey}`);
      await writeLayout(layout, manifestNamingLayersTwice(secondKey), "v1");
      const { reference } = await publishWithSkopeo(layout, "v1", registry, `dup/${secondKey.toLowerCase()}${secondKey === "Layers" ? "-case" : ""}`);
      const out = join(work, `out-${secondKey}`);
      const result = await ociboot(["fetch", reference, "-o", out]);
      expect(result.code, result.stderr).toBe(5);
      expect(result.stderr).toMatch(/duplicate member name "(layers|Layers)"/);
      expect(existsSync(join(out, "vmlinuz"))).toBe(false);
    });
  }

  it("a store whose index.json names a member twice is refused (exit 5)", async () => {
    const layout = join(work, "dup-index");
    await writeLayout(layout, Buffer.from(`{"schemaVersion":2,"config":${describeBytes(CONFIG_TYPE, CONFIG)},"layers":[${describeBytes(VMLINUZ, KERNEL)}]}`), "v1");
    await writeFile(join(layout, "index.json"), '{"schemaVersion":2,"manifests":[],"Manifests":[]}');
    const result = await ociboot(["--store-path", layout, "list"]);
    expect(result.code, result.stderr).toBe(5);
    expect(result.stderr).toMatch(/duplicate member name "Manifests" \(also "manifests"\)/);
  });
});
