import { type ArchiveWriterOptions, OciArchiveWriter } from "../content/archive-writer.ts";
import { refNameOf } from "../content/layout-index.ts";
import type { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore } from "../content/store.ts";
import type { TransferHooks } from "./copy-graph.ts";
import { copyImage, type CopyImageOptions, type CopyImageResult } from "./copy-image.ts";
import { signatureLookup, verifyImageSignature, type VerifiedSigner } from "./signature.ts";

/** Options for {@link exportArchive}. */
export type ExportOptions = Omit<CopyImageOptions, "concurrency" | "restartBlobs" | "targetDigest"> & ArchiveWriterOptions;

/**
 * Writes the image `reference` names (with its referrers, if asked) from any store into an OCI
 * layout archive at `path` (`.tar`, `.tar.gz` or `.tar.xz` by name): the air-gapped half of a
 * copy, read back by `ociboot import`, `skopeo copy oci-archive:` and `ociboot fetch oci-archive:`.
 * Every blob is verified as it enters the archive (a transfer broken by the network continues
 * where it stopped); `path` appears only once the whole archive is written and synced, and a
 * failure leaves neither `path` nor `path.partial` behind.
 */
export async function exportArchive(source: ReadableStore, reference: string, path: string, options: ExportOptions = {}): Promise<CopyImageResult> {
  const { compression, folder, level, trust, ...copyOptions } = options;
  // Checked before FILE.partial exists, and the checked digest is what gets copied: a source that
  // answers differently the second time cannot slip another image in.
  let signers: VerifiedSigner[] | undefined;
  if (trust) {
    const root = await source.resolve(reference);
    signers = await verifyImageSignature(source, root, trust, signatureLookup(trust, options.signal));
    reference = root.digest;
  }
  const writer = await OciArchiveWriter.create(path, {
    ...(compression !== undefined ? { compression } : {}),
    ...(folder !== undefined ? { folder } : {}),
    ...(level !== undefined ? { level } : {}),
  });
  try {
    // A tar takes one entry at a time, and a blob cut off halfway cannot be taken back out of it:
    // one try per blob, whose broken transfer continues from the byte reached (copy-graph.ts).
    const result = await copyImage(source, reference, writer, { ...copyOptions, concurrency: 1, restartBlobs: false });
    await writer.commit();
    return signers ? { ...result, signers } : result;
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/**
 * Writes a whole layout into an archive: every index.json entry, tagged or untagged (referrers
 * among them), in the store's order, with everything it reaches, so that importing the archive
 * gives the same listing. Verified, `FILE.partial` and commit as {@link exportArchive}.
 */
export async function exportLayout(store: OciLayoutStore, path: string, options: ArchiveWriterOptions & { signal?: AbortSignal } = {}): Promise<void> {
  const { signal, ...writerOptions } = options;
  const writer = await OciArchiveWriter.create(path, writerOptions);
  try {
    await copyLayoutInto(store, writer, signal === undefined ? {} : { signal });
    await writer.commit();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** Copies every index.json entry of a layout, with its name if it has one, into an archive being written. */
export async function copyLayoutInto(store: OciLayoutStore, writer: OciArchiveWriter, options: TransferHooks & { signal?: AbortSignal } = {}): Promise<void> {
  for (const entry of await store.entries()) {
    const name = refNameOf(entry);
    await copyImage(store, entry.digest, writer, {
      ...options,
      concurrency: 1,
      restartBlobs: false,
      ...(name !== undefined ? { targetReference: name } : {}),
    });
  }
}
