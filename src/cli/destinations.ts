import { OciLayoutStore } from "../content/layout.ts";
import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import { DEFAULT_TAG } from "../oci/reference.ts";
import { copyImage, type CopyImageOptions, type CopyImageResult } from "../ops/copy-image.ts";
import { exportArchive } from "../ops/export.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { resolvePath } from "./paths.ts";
import { withRepository } from "./commands/registry-access.ts";
import { parseLocation } from "./sources.ts";

/** Where `copy` writes, as written on the command line: it takes an image from a source store. */
export interface Destination {
  copyFrom(source: ReadableStore, reference: string, options: CopyImageOptions): Promise<CopyImageResult>;
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
        copyFrom: (source, reference, copyOptions) =>
          exportArchive(source, reference, resolvePath(context, location.path), {
            ...named(copyOptions, location.reference),
            ...(options.archiveFolder !== undefined ? { folder: options.archiveFolder } : {}),
            ...(options.level !== undefined ? { level: options.level } : {}),
          }),
      };
    case "layout":
      return {
        copyFrom: (source, reference, copyOptions) =>
          copyImage(source, reference, new OciLayoutStore(resolvePath(context, location.path)), named(copyOptions, location.reference)),
      };
    case "registry":
      return {
        copyFrom: (source, reference, copyOptions) =>
          withRepository(location.reference, global, context, (repository, target) => {
            const tag = target.tag ?? (target.digest === undefined ? DEFAULT_TAG : undefined);
            return copyImage(source, reference, repository, { ...named(copyOptions, tag), ...(target.digest !== undefined ? { targetDigest: target.digest } : {}) });
          }),
      };
  }
}
