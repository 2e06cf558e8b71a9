import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  addSignatureToLayout,
  cosignPayload,
  makeKey,
  publishRepeatedSignature,
  publishSignature,
  signedLayer,
  signWithOpenssl,
  type SignatureLayerInput,
  type TestKey,
} from "../harness/cosign.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout, type LayerSpec, type ManifestSpec } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
const keys: Partial<Record<"rsa" | "p256" | "ed25519" | "other", TestKey>> = {};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-trust-"));
  registry = await startRegistry();
  await mkdir(join(work, "docker"));
  await writeFile(join(work, "docker", "config.json"), "{}");
  [keys.rsa, keys.p256, keys.ed25519, keys.other] = await Promise.all([
    makeKey(work, "rsa-4096", "rsa"),
    makeKey(work, "p-256", "p256"),
    makeKey(work, "ed25519", "ed25519"),
    makeKey(work, "p-256", "other"),
  ]);
}, 120_000);
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const cli = (...argv: string[]) => runInProcess(argv, { cwd: work, env: { DOCKER_CONFIG: join(work, "docker") } });
const key = (name: keyof typeof keys): TestKey => {
  const found = keys[name];
  if (!found) throw new Error(`no key ${name}`);
  return found;
};

let imageCount = 0;
/** Publishes a small onmetal boot image; returns its reference and manifest digest. */
async function publishImage(repository: string, tag = "1"): Promise<{ reference: string; digest: string; repository: string }> {
  const layout = join(work, `image-${++imageCount}`);
  const written = await writeOciLayout(layout, {
    manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${imageCount}` }, initrd: { bytes: `initrd ${imageCount}` }, rootfs: { bytes: `rootfs ${imageCount}` }, commandLine: "console=ttyS0", tag })],
  });
  const { reference } = await publishWithSkopeo(layout, tag, registry, repository);
  return { reference, digest: written.manifests[0]?.descriptor.digest as string, repository: `${registry.host}/${repository}` };
}

async function expectRefusedWithNothingWritten(argv: string[], output: string, message: RegExp): Promise<string> {
  const result = await cli(...argv);
  expect(result.code, result.stderr).toBe(11);
  expect(result.stderr).toMatch(message);
  expect(existsSync(join(work, output))).toBe(false);
  return result.stderr;
}

describe("fetch --key: a cosign signature verified before anything is written", () => {
  for (const [name, label] of [["rsa", "RSA-4096 (key given as an X.509 certificate)"], ["p256", "ECDSA P-256"], ["ed25519", "Ed25519"]] as const) {
    it(`accepts a ${label} signature and reports the signer`, async () => {
      const image = await publishImage(`trust/${name}`);
      await publishSignature(work, registry, `trust/${name}`, image.digest, [await signedLayer(key(name), image.repository, image.digest, work)]);
      const keyFile = name === "rsa" ? key(name).certificate : key(name).publicKey;
      const result = await cli("fetch", image.reference, "--key", keyFile, "-o", `out-${name}`, "--json");
      expect(result.code, result.stderr).toBe(0);
      const report = JSON.parse(result.stdout);
      expect(report.signer).toMatchObject({ fingerprint: key(name).fingerprint, key: keyFile, signedDigest: image.digest, layer: 0 });
      expect(report.signer.signature).toContain(`sha256-${image.digest.slice(7)}.sig`);
      expect(await readFile(join(work, `out-${name}`, "vmlinuz"), "utf8")).toBe(`kernel ${imageCount}`);
      expect(await readdir(join(work, `out-${name}`))).toContain("signatures.json");
    });
  }

  it("accepts a .sig with two layers by two keys, with either key; any one of several --key is enough", async () => {
    const image = await publishImage("trust/two");
    await publishSignature(work, registry, "trust/two", image.digest, [
      await signedLayer(key("p256"), image.repository, image.digest, work),
      await signedLayer(key("ed25519"), image.repository, image.digest, work),
    ]);
    const second = JSON.parse((await cli("fetch", image.reference, "--key", key("ed25519").publicKey, "-o", "out-two-a", "--json")).stdout);
    expect(second.signer).toMatchObject({ fingerprint: key("ed25519").fingerprint, layer: 1 });
    const either = await cli("fetch", image.reference, "--key", key("other").publicKey, "--key", key("p256").publicKey, "-o", "out-two-b", "--json");
    expect(either.code, either.stderr).toBe(0);
    expect(JSON.parse(either.stdout).signer).toMatchObject({ fingerprint: key("p256").fingerprint, layer: 0 });
  });

  it("refuses the wrong key, naming both fingerprints and what was found", async () => {
    const image = await publishImage("trust/wrong");
    await publishSignature(work, registry, "trust/wrong", image.digest, [await signedLayer(key("p256"), image.repository, image.digest, work)]);
    const stderr = await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("other").publicKey, "-o", "out-wrong"], "out-wrong", /signed by another key/);
    expect(stderr).toContain(key("other").fingerprint);
    expect(stderr).toContain(`sha256-${image.digest.slice(7)}.sig`);
  });

  it("refuses an image without any signature", async () => {
    const image = await publishImage("trust/none");
    await expectRefusedWithNothingWritten(
      ["fetch", image.reference, "--key", key("p256").publicKey, "-o", "out-none"],
      "out-none",
      new RegExp(`no signature at registry ${registry.host}/trust/none:sha256-${image.digest.slice(7)}\\.sig`),
    );
  });

  it("refuses a payload that names another digest", async () => {
    const image = await publishImage("trust/other-digest");
    const other = await publishImage("trust/other-digest", "2");
    await publishSignature(work, registry, "trust/other-digest", image.digest, [await signedLayer(key("p256"), image.repository, other.digest, work)]);
    await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("p256").publicKey, "-o", "out-other"], "out-other", /signature names another digest/);
  });

  it("refuses a flipped signature byte and a signature that is not base64", async () => {
    const image = await publishImage("trust/flipped");
    const layer = await signedLayer(key("rsa"), image.repository, image.digest, work);
    const signature = Buffer.from(layer.signatureBase64, "base64");
    signature[signature.length - 5] = (signature[signature.length - 5] ?? 0) ^ 0x01;
    await publishSignature(work, registry, "trust/flipped", image.digest, [{ ...layer, signatureBase64: signature.toString("base64") }]);
    await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("rsa").certificate, "-o", "out-flipped"], "out-flipped", /signed by another key/);

    const bad = await publishImage("trust/bad-base64");
    await publishSignature(work, registry, "trust/bad-base64", bad.digest, [{ ...(await signedLayer(key("rsa"), bad.repository, bad.digest, work)), signatureBase64: "not*base64!" }]);
    await expectRefusedWithNothingWritten(["fetch", bad.reference, "--key", key("rsa").certificate, "-o", "out-b64"], "out-b64", /not base64/);
  });

  it("refuses a payload tampered with at rest in the registry", async () => {
    const image = await publishImage("trust/tampered");
    const layer = await signedLayer(key("p256"), image.repository, image.digest, work);
    await publishSignature(work, registry, "trust/tampered", image.digest, [layer]);
    const payloadDigest = `sha256:${(await import("node:crypto")).createHash("sha256").update(layer.payload).digest("hex")}`;
    const stored = registry.blobDataPath(payloadDigest);
    const bytes = await readFile(stored);
    bytes[bytes.indexOf("sha256:") + 7] = "0".charCodeAt(0) === bytes[bytes.indexOf("sha256:") + 7] ? "1".charCodeAt(0) : "0".charCodeAt(0);
    await writeFile(stored, bytes);
    await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("p256").publicKey, "-o", "out-tampered"], "out-tampered", /payload is missing or does not match its digest/);
  });

  it("refuses a signature payload that was changed after signing", async () => {
    const image = await publishImage("trust/changed");
    const original = cosignPayload("example.com/else", image.digest);
    const signature = await signWithOpenssl(key("p256"), original, work);
    const changed = Buffer.from(original.toString().replace("example.com/else", "example.com/evil"));
    await publishSignature(work, registry, "trust/changed", image.digest, [{ payload: changed, signatureBase64: signature.toString("base64") }]);
    await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("p256").publicKey, "-o", "out-changed"], "out-changed", /signed by another key/);
  });

  it("refuses a .sig manifest over the size cap, and one with thousands of layers", async () => {
    const image = await publishImage("trust/huge");
    const layer = await signedLayer(key("p256"), image.repository, image.digest, work);
    await publishSignature(work, registry, "trust/huge", image.digest, [{ ...layer, annotations: { padding: "x".repeat(300 * 1024) } }]);
    await expectRefusedWithNothingWritten(["fetch", image.reference, "--key", key("p256").publicKey, "-o", "out-huge"], "out-huge", /over the cap/);

    const many = await publishImage("trust/many");
    const manyLayer = await signedLayer(key("p256"), many.repository, many.digest, work);
    await publishRepeatedSignature(work, registry, "trust/many", many.digest, manyLayer, 3000);
    await expectRefusedWithNothingWritten(["fetch", many.reference, "--key", key("p256").publicKey, "-o", "out-many"], "out-many", /over the cap/);

    const hundred = await publishImage("trust/hundred");
    const hundredLayer = await signedLayer(key("p256"), hundred.repository, hundred.digest, work);
    await publishRepeatedSignature(work, registry, "trust/hundred", hundred.digest, hundredLayer, 100);
    await expectRefusedWithNothingWritten(["fetch", hundred.reference, "--key", key("p256").publicKey, "-o", "out-hundred"], "out-hundred", /100 layers, over the cap of 64/);
  }, 60_000);

  it("refuses to write one role to stdout without a signature", async () => {
    const image = await publishImage("trust/stdout");
    const result = await cli("fetch", image.reference, "--key", key("p256").publicKey, "--role", "kernel", "-o", "-");
    expect(result.code).toBe(11);
    expect(result.stdout).toBe("");
  });

  it("refuses a key file that is no key", async () => {
    await writeFile(join(work, "garbage.pem"), "hello");
    const result = await cli("fetch", `${registry.host}/trust/none:1`, "--key", "garbage.pem", "-o", "out-garbage");
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/Cannot load key garbage\.pem/);
  });
});

const TITLE = "org.opencontainers.image.title";
function gardenLinuxFlavor(cname: string, architecture: string, version = "1592.1"): ManifestSpec {
  const layer = (mediaType: string, suffix: string, bytes: string): LayerSpec => ({ mediaType, bytes, annotations: { [TITLE]: `${cname}.${suffix}` } });
  return {
    config: { mediaType: "application/vnd.unknown.config.v1+json", bytes: "{}" },
    layers: [layer("application/io.gardenlinux.kernel", "vmlinuz", `kernel of ${cname}`), layer("application/io.gardenlinux.initrd", "initrd", `initrd of ${cname}`)],
    annotations: { cname, architecture, version, feature_set: "_boot,metal" },
  };
}

describe("Garden Linux: signed flavor manifests under an unsigned version index", () => {
  const flavors: Array<[string, string]> = [
    ["metal-amd64-1592.1", "amd64"],
    ["kvm-amd64-1592.1", "amd64"],
    ["metal-arm64-1592.1", "arm64"],
  ];
  let reference: string;
  let digests: string[];

  beforeAll(async () => {
    const layout = join(work, "gl-layout");
    const written = await writeOciLayout(layout, {
      manifests: flavors.map(([cname, arch]) => gardenLinuxFlavor(cname, arch)),
      indexes: [
        {
          tag: "1592.1",
          manifests: flavors.map(([cname, architecture], position) => ({
            manifest: position,
            platform: { os: "gardenlinux", architecture, "os.version": "1592.1" },
            annotations: { cname, architecture, feature_set: "_boot,metal" },
          })),
        },
        {
          // A mirror's index: the metal-amd64 entry points at the (validly signed) kvm manifest.
          tag: "swapped",
          manifests: [{ manifest: 1, platform: { os: "gardenlinux", architecture: "amd64", "os.version": "1592.1" }, annotations: { cname: "metal-amd64-1592.1", architecture: "amd64" } }],
        },
      ],
    });
    digests = written.manifests.map((manifest) => manifest.descriptor.digest);
    reference = (await publishWithSkopeo(layout, "1592.1", registry, "gardenlinux/gardenlinux")).reference;
    await publishWithSkopeo(layout, "swapped", registry, "gardenlinux/gardenlinux");
    // As Garden Linux: only the amd64 flavors are signed here, with an RSA-4096 key; the index is not.
    for (const digest of digests.slice(0, 2)) {
      await publishSignature(work, registry, "gardenlinux/gardenlinux", digest, [await signedLayer(key("rsa"), "ghcr.io/gardenlinux/gardenlinux", digest, work)]);
    }
  }, 60_000);

  it("fetches a signed flavor through the unsigned index", async () => {
    const result = await cli("fetch", reference, "--platform", "linux/amd64", "--flavor", "metal", "--key", key("rsa").certificate, "-o", "gl-metal", "--json");
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout).signer).toMatchObject({ fingerprint: key("rsa").fingerprint, signedDigest: digests[0] });
  });

  it("refuses the unsigned arm64 flavor, the index being unsigned too", async () => {
    const stderr = await expectRefusedWithNothingWritten(
      ["fetch", reference, "--platform", "linux/arm64", "--flavor", "metal", "--key", key("rsa").certificate, "-o", "gl-arm64"],
      "gl-arm64",
      /no signature at .*sha256-.*\.sig or in referrers; no signature at .*sha256-.*\.sig or in referrers/,
    );
    expect(stderr).toContain(digests[2]);
  });

  it("refuses an index entry moved to another validly signed manifest", async () => {
    await expectRefusedWithNothingWritten(
      ["fetch", `${registry.host}/gardenlinux/gardenlinux:swapped`, "--platform", "linux/amd64", "--flavor", "metal", "--key", key("rsa").certificate, "-o", "gl-swapped"],
      "gl-swapped",
      /cname "kvm-amd64-1592\.1" where the index entry says "metal-amd64-1592\.1"/,
    );
  });
});

describe("signatures in oci: layouts and oci-archive: files", () => {
  it("finds sha256-<hex>.sig as a plain tag or under the image's name", async () => {
    const layout = join(work, "layout-signed");
    const written = await writeOciLayout(layout, {
      manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, tag: "example.com/os:1" })],
    });
    const digest = written.manifests[0]?.descriptor.digest as string;
    const layers: SignatureLayerInput[] = [await signedLayer(key("ed25519"), "example.com/os", digest, work)];
    await addSignatureToLayout(work, layout, digest, layers, "example.com/os:");
    const named = await cli("fetch", "oci:layout-signed:example.com/os:1", "--key", key("ed25519").publicKey, "-o", "out-layout", "--json");
    expect(named.code, named.stderr).toBe(0);
    expect(JSON.parse(named.stdout).signer.fingerprint).toBe(key("ed25519").fingerprint);

    const plainLayout = join(work, "layout-plain");
    await writeOciLayout(plainLayout, {
      manifests: [makeBootImage({ dialect: "onmetal", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" }, tag: "1" })],
    });
    await addSignatureToLayout(work, plainLayout, digest, layers);
    const plain = await cli("fetch", "oci:layout-plain:1", "--key", key("ed25519").publicKey, "-o", "out-plain", "--json");
    expect(plain.code, plain.stderr).toBe(0);
    const refused = await cli("fetch", "oci:layout-plain:1", "--key", key("p256").publicKey, "-o", "out-plain-refused");
    expect(refused.code).toBe(11);
    expect(existsSync(join(work, "out-plain-refused"))).toBe(false);
  });
});

describe("a signed index (cosign sign on the index digest)", () => {
  it("accepts a manifest chosen from a signed index, for fetch, pull and copy; refuses another key", async () => {
    const layout = join(work, "signed-index");
    const boot = (arch: string) => makeBootImage({ dialect: "onmetal", kernel: { bytes: `kernel ${arch}` }, initrd: { bytes: `initrd ${arch}` }, rootfs: { bytes: "rootfs" } });
    const written = await writeOciLayout(layout, {
      manifests: [boot("amd64"), boot("arm64")],
      indexes: [{ tag: "multi", manifests: [{ manifest: 0, platform: { os: "linux", architecture: "amd64" } }, { manifest: 1, platform: { os: "linux", architecture: "arm64" } }] }],
    });
    const index = written.indexes[0]?.descriptor.digest as string;
    const { reference } = await publishWithSkopeo(layout, "multi", registry, "trust/index");
    await publishSignature(work, registry, "trust/index", index, [await signedLayer(key("ed25519"), `${registry.host}/trust/index`, index, work)]);

    const fetched = await cli("fetch", reference, "--platform", "linux/arm64", "--key", key("ed25519").publicKey, "-o", "out-index", "--json");
    expect(fetched.code, fetched.stderr).toBe(0);
    expect(JSON.parse(fetched.stdout).signer).toMatchObject({ signedDigest: index, fingerprint: key("ed25519").fingerprint });
    const offline = await cli("verify", "--dir", "out-index", "--key", key("ed25519").publicKey);
    expect(offline.code, offline.stderr).toBe(0);
    expect((await cli("--store-path", "store-index", "pull", reference, "--platform", "linux/amd64", "--key", key("ed25519").publicKey)).code).toBe(0);
    expect((await cli("copy", reference, "oci:copied-index:multi", "--key", key("ed25519").publicKey)).code).toBe(0);
    await expectRefusedWithNothingWritten(["fetch", reference, "--platform", "linux/arm64", "--key", key("p256").publicKey, "-o", "out-index-refused"], "out-index-refused", /signed by another key/);
  });
});
