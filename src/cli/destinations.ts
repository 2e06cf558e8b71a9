import { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore, WritableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import { DEFAULT_TAG } from "../oci/reference.ts";
import { copyImage, type CopyImageOptions, type CopyImageResult } from "../ops/copy-image.ts";
import { exportArchive } from "../ops/export.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { resolvePath } from "./paths.ts";
import { withRepository } from "./commands/registry-access.ts";
import { type OpenedSource, parseLocation } from "./sources.ts";

/**
 * Opens the copy's source once the destination is open: given the store that can take blobs ahead
 * of their manifest (a layout or registry; undefined for an archive being written), so that a
 * compressed archive source can push its large blobs straight into it (docs/archives.md).
 */
export type SourceOpener = (target: (ReadableStore & WritableStore) | undefined) => Promise<OpenedSource>;

/** Where `copy` writes, as written on the command line: it takes an image from a source store. */
export interface Destination {
  copyFrom(openSource: SourceOpener, options: CopyImageOptions): Promise<CopyImageResult>;
}

/** Opens the source, runs the copy from it, and closes the source again. */
async function fromSource(
  openSource: SourceOpener,
  target: (ReadableStore & WritableStore) | undefined,
  copy: (source: OpenedSource) => Promise<CopyImageResult>,
): Promise<CopyImageResult> {
  const source = await openSource(target);
  try {
    return await copy(source);
  } finally {
    await source.close();
  }
}

/**
 * Opens a copy destination: an OCI archive being written, an OCI layout, or a registry
 * repository. REF (or the registry reference's tag) names the copy; a registry reference without
 * tag or digest means `latest`, and one with a digest must match what is copied, as push does.
 */
export function openDestination(text: string, global: GlobalOptions, context: CliContext, options: { archiveFolder?: string; level?: number } = {}): Destination {
  const location = parseLocation(text);
  if (options.archiveFolder !== undefined && location.kind !== "archive") {
    throw new OcibootError("USAGE", `Cannot use --archive-folder: ${text} is not an oci-archive: destination`);
  }
  const named = (copyOptions: CopyImageOptions, name: string | undefined): CopyImageOptions => (name === undefined ? copyOptions : { ...copyOptions, targetReference: name });
  switch (location.kind) {
    case "archive":
      return {
        copyFrom: (openSource, copyOptions) =>
          fromSource(openSource, undefined, (source) =>
            exportArchive(source.store, source.reference, resolvePath(context, location.path), {
              ...named(copyOptions, location.reference),
              ...(options.archiveFolder !== undefined ? { folder: options.archiveFolder } : {}),
              ...(options.level !== undefined ? { level: options.level } : {}),
            }),
          ),
      };
    case "layout":
      return {
        copyFrom: (openSource, copyOptions) => {
          const target = new OciLayoutStore(resolvePath(context, location.path));
          return fromSource(openSource, target, (source) => copyImage(source.store, source.reference, target, named(copyOptions, location.reference)));
        },
      };
    case "registry":
      return {
        copyFrom: (openSource, copyOptions) =>
          withRepository(location.reference, global, context, (repository, target) => {
            const tag = target.tag ?? (target.digest === undefined ? DEFAULT_TAG : undefined);
            return fromSource(openSource, repository, (source) =>
              copyImage(source.store, source.reference, repository, { ...named(copyOptions, tag), ...(target.digest !== undefined ? { targetDigest: target.digest } : {}) }),
            );
          }),
      };
  }
}
