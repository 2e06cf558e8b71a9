import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { isDigest, sha256DigestOf } from "../oci/digest.ts";
import type { FetchedContent, FetchOptions, Store, TagLister } from "./store.ts";
import { readVerified } from "./verify.ts";

/** A content store held in memory: the reference implementation of the store interface, used by tests. */
export class MemoryStore implements Store, TagLister {
  readonly description = "memory";
  readonly #blobs = new Map<string, Uint8Array>();
  readonly #tags = new Map<string, Descriptor>();

  /** Adds bytes (not verified against anything) and returns their descriptor. */
  add(mediaType: string, bytes: Uint8Array, extra: Partial<Descriptor> = {}): Descriptor {
    const digest = sha256DigestOf(bytes);
    this.#blobs.set(digest, bytes);
    return { ...extra, mediaType, digest, size: bytes.byteLength };
  }

  /** Replaces stored bytes under an existing digest: lets tests play a corrupt or hostile store. */
  corrupt(digest: string, bytes: Uint8Array): void {
    this.#blobs.set(digest, bytes);
  }

  async resolve(reference: string): Promise<Descriptor> {
    const tagged = this.#tags.get(reference);
    if (tagged) return tagged;
    if (isDigest(reference)) {
      const bytes = this.#blobs.get(reference);
      if (bytes) return { mediaType: "application/vnd.oci.image.manifest.v1+json", digest: reference, size: bytes.byteLength };
    }
    throw new OcibootError("NOT_FOUND", `Cannot resolve ${reference}: not in the memory store`);
  }

  async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    const bytes = this.#blobs.get(descriptor.digest);
    if (!bytes) throw new OcibootError("NOT_FOUND", `Cannot fetch ${descriptor.digest}: not in the memory store`);
    const offset = options.offset !== undefined && options.offset <= bytes.byteLength ? options.offset : 0;
    const chunkSize = 64 * 1024;
    let position = offset;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (position >= bytes.byteLength) {
          controller.close();
          return;
        }
        const end = Math.min(position + chunkSize, bytes.byteLength);
        controller.enqueue(bytes.slice(position, end));
        position = end;
      },
    });
    return { stream, offset };
  }

  async exists(descriptor: Descriptor): Promise<boolean> {
    return this.#blobs.has(descriptor.digest);
  }

  async push(descriptor: Descriptor, content: ReadableStream<Uint8Array>): Promise<void> {
    const bytes = await readVerified(content, descriptor, Number.MAX_SAFE_INTEGER);
    this.#blobs.set(descriptor.digest, bytes);
  }

  async tag(descriptor: Descriptor, reference: string): Promise<void> {
    this.#tags.set(reference, descriptor);
  }

  async *tags(): AsyncIterable<string> {
    yield* this.#tags.keys();
  }
}
