import { createHash } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { OciLayoutStore } from "../../src/content/layout.ts";
import { checkFor, ContentVerifier, verifiedAtSource, withVerificationOf } from "../../src/content/verify.ts";
import { isOcibootError } from "../../src/errors.ts";
import type { Descriptor } from "../../src/oci/descriptor.ts";
import { sha256Digest } from "../../src/oci/digest.ts";

function describeBytes(bytes: Uint8Array): Descriptor {
  return { mediaType: "application/octet-stream", digest: sha256Digest(createHash("sha256").update(bytes).digest("hex")), size: bytes.byteLength };
}

/** A stream of `bytes` that checks them against `descriptor` as the archive reader does: INTEGRITY before its end. */
function selfCheckingStream(bytes: Uint8Array, descriptor: Descriptor): ReadableStream<Uint8Array> {
  const verifier = new ContentVerifier(descriptor);
  let sent = false;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent) {
        verifier.finish();
        controller.close();
        return;
      }
      sent = true;
      verifier.update(bytes);
      controller.enqueue(bytes);
    },
  });
}

const right = new TextEncoder().encode("the content the name promises");
const wrong = new TextEncoder().encode("the content the name promises!".slice(1));

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "ociboot-verify-"));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("checkFor", () => {
  it("hashes a stream that does not verify itself", () => {
    const descriptor = describeBytes(right);
    const check = checkFor(new Blob([wrong]).stream(), descriptor);
    check.update(wrong);
    expect(() => check.finish()).toThrow(/content hashes to/);
  });

  it("only counts a stream that verifies itself against the same digest and size", () => {
    const descriptor = describeBytes(right);
    const check = checkFor(verifiedAtSource(new Blob([wrong]).stream(), descriptor), descriptor);
    // Same length, other bytes: the digest is the stream's own business, so this check passes.
    check.update(wrong);
    expect(() => check.finish()).not.toThrow();
    const longer = checkFor(verifiedAtSource(new Blob([right]).stream(), descriptor), descriptor);
    expect(() => longer.update(new Uint8Array(descriptor.size + 1))).toThrow(/more than the declared/);
    const shorter = checkFor(verifiedAtSource(new Blob([right]).stream(), descriptor), descriptor);
    shorter.update(right.subarray(1));
    expect(() => shorter.finish()).toThrow(/received 28 of 29 bytes/);
  });

  it("a stream piped from a self-verifying one carries its mark; one piped from an unmarked stream does not", () => {
    const descriptor = describeBytes(right);
    const marked = verifiedAtSource(new Blob([wrong]).stream(), descriptor);
    const counted = checkFor(withVerificationOf(marked.pipeThrough(new TransformStream()), marked), descriptor);
    counted.update(wrong);
    expect(() => counted.finish()).not.toThrow();
    const plain = new Blob([wrong]).stream();
    const hashed = checkFor(withVerificationOf(plain.pipeThrough(new TransformStream()), plain), descriptor);
    hashed.update(wrong);
    expect(() => hashed.finish()).toThrow(/content hashes to/);
  });

  it("hashes a stream marked for another digest", () => {
    const descriptor = describeBytes(right);
    const check = checkFor(verifiedAtSource(new Blob([wrong]).stream(), describeBytes(wrong)), descriptor);
    check.update(wrong);
    expect(() => check.finish()).toThrow(/content hashes to/);
  });
});

describe("a layout store taking a stream that verifies itself", () => {
  it("stores it when it matches", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const descriptor = describeBytes(right);
    await store.push(descriptor, verifiedAtSource(selfCheckingStream(right, descriptor), descriptor));
    expect(Buffer.from(await store.readBlob(descriptor)).toString()).toBe("the content the name promises");
  });

  it("commits nothing when the stream's own check fails at its end", async () => {
    const store = new OciLayoutStore(join(root, "store"));
    const descriptor = describeBytes(right);
    const failure = await store.push(descriptor, verifiedAtSource(selfCheckingStream(wrong, descriptor), descriptor)).catch((error: unknown) => error);
    expect(isOcibootError(failure, "INTEGRITY")).toBe(true);
    expect(String(failure)).toMatch(/content hashes to/);
    expect(await store.exists(descriptor)).toBe(false);
    expect(await readdir(join(root, "store", ".ociboot", "tmp"))).toEqual([]);
  });
});
