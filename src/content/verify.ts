import { createHash, type Hash } from "node:crypto";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { parseDigest } from "../oci/digest.ts";

/**
 * Incremental check of one blob against its descriptor: counts bytes, hashes them, refuses the
 * first byte past the declared size and compares the digest at the end.
 */
export class ContentVerifier {
  readonly #descriptor: Descriptor;
  readonly #hash: Hash;
  #received = 0;

  constructor(descriptor: Descriptor, options: { initialHash?: Hash; initialSize?: number } = {}) {
    const { algorithm } = parseDigest(descriptor.digest);
    this.#descriptor = descriptor;
    this.#hash = options.initialHash ?? createHash(algorithm);
    this.#received = options.initialSize ?? 0;
  }

  get received(): number {
    return this.#received;
  }

  /** Feeds a chunk; throws INTEGRITY as soon as the content is longer than declared. */
  update(chunk: Uint8Array): void {
    this.#received += chunk.byteLength;
    if (this.#received > this.#descriptor.size) {
      throw new OcibootError(
        "INTEGRITY",
        `Cannot accept ${this.#descriptor.digest}: more than the declared ${this.#descriptor.size} bytes received`,
        { details: { digest: this.#descriptor.digest, expectedSize: this.#descriptor.size } },
      );
    }
    this.#hash.update(chunk);
  }

  /** Checks size and digest once all content was fed; throws INTEGRITY on any mismatch. */
  finish(): void {
    const { digest, size } = this.#descriptor;
    if (this.#received !== size) {
      throw new OcibootError("INTEGRITY", `Cannot accept ${digest}: received ${this.#received} of ${size} bytes`, {
        details: { digest, expectedSize: size, receivedSize: this.#received },
      });
    }
    const { algorithm, hex } = parseDigest(digest);
    const actual = this.#hash.digest("hex");
    if (actual !== hex) {
      throw new OcibootError("INTEGRITY", `Cannot accept ${digest}: content hashes to ${algorithm}:${actual}`, {
        details: { digest, actualDigest: `${algorithm}:${actual}` },
      });
    }
  }
}

/** A stream stage that passes bytes through unchanged and errors unless they match the descriptor. */
export function verifyContent(descriptor: Descriptor): TransformStream<Uint8Array, Uint8Array> {
  const verifier = new ContentVerifier(descriptor);
  return new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, controller) {
      verifier.update(chunk);
      controller.enqueue(chunk);
    },
    flush() {
      verifier.finish();
    },
  });
}

/** Refuses, before any byte is read, a small blob (manifest, config) that says it is larger than `maxBytes`. */
export function checkReadLimit(descriptor: Descriptor, maxBytes: number): void {
  if (descriptor.size > maxBytes) {
    throw new OcibootError("UNSAFE_CONTENT", `Cannot read ${descriptor.digest}: ${descriptor.size} bytes is more than the ${maxBytes}-byte limit`);
  }
}

/**
 * Reads a whole small blob (manifest, config) into memory, verified and bounded by `maxBytes`,
 * so that a hostile store cannot make us buffer more than the cap.
 */
export async function readVerified(
  stream: ReadableStream<Uint8Array>,
  descriptor: Descriptor,
  maxBytes: number,
): Promise<Uint8Array> {
  try {
    checkReadLimit(descriptor, maxBytes);
  } catch (error) {
    await stream.cancel().catch(() => undefined);
    throw error;
  }
  const verifier = new ContentVerifier(descriptor);
  const buffer = new Uint8Array(descriptor.size);
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const offset = verifier.received;
      verifier.update(value);
      buffer.set(value, offset);
    }
  } catch (error) {
    await reader.cancel().catch(() => undefined);
    throw error;
  } finally {
    reader.releaseLock();
  }
  verifier.finish();
  return buffer;
}
