import { Command } from "@commander-js/extra-typings";
import { OciLayoutStore } from "../../content/layout.ts";
import type { ReadableStore } from "../../content/store.ts";
import { OcibootError } from "../../errors.ts";
import { DEFAULT_TAG } from "../../oci/reference.ts";
import { copyImage, type CopyImageOptions, type CopyImageResult } from "../../ops/copy-image.ts";
import { exportArchive } from "../../ops/export.ts";
import type { CliContext } from "../context.ts";
import { compressionLevelOption } from "../compression-option.ts";
import { type GlobalOptions, globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { type Location, openSource, parseLocation } from "../sources.ts";
import { formatCopyReport } from "./copy-output.ts";
import { withRepository } from "./registry-access.ts";
import { transferLog } from "./transfer-log.ts";

/** `ociboot copy SRC DST`: an image between registries, OCI layouts and OCI archives, in any direction. */
export function copyCommand(context: CliContext) {
  return new Command("copy")
    .description(
      "copy an image (a whole multi-arch index too) between a registry, an OCI layout (oci:DIR[:REF]) and an OCI archive (oci-archive:FILE[:REF], .tar/.tar.gz/.tar.xz/.tar.zst), digests preserved, every blob verified",
    )
    .argument("<source>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .argument("<destination>", "registry reference (host/repo:tag), oci:DIR[:REF] or oci-archive:FILE[:REF]; REF names the copy")
    .option("--with-referrers", "also copy the referrers of the image (OCI 1.1 subject: build logs, SBOMs, signatures)")
    .option("--archive-folder <name>", "write the layout under this folder of the archive (onmetal: the Garden Linux .oci.tar.xz shape)")
    .addOption(compressionLevelOption())
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n" +
        "  ociboot copy ghcr.io/gardenlinux/gardenlinux:1592.1 oci-archive:gardenlinux.oci.tar.gz --with-referrers   # export\n" +
        "  ociboot copy oci-archive:gardenlinux.oci.tar.gz registry.airgap:5000/gardenlinux:1592.1 --with-referrers   # import\n" +
        "  ociboot copy 127.0.0.1:5000/os:today oci-archive:os.oci.tar.xz --archive-folder onmetal\n" +
        "  ociboot copy oci:./onmetal:ghcr.io/me/os:1.0 127.0.0.1:5000/os:1.0",
    )
    .action(async (sourceText, destinationText, options, command) => {
      const global = globalOptions(command as never, context);
      const destination = parseLocation(destinationText);
      if (options.archiveFolder !== undefined && destination.kind !== "archive") {
        throw new OcibootError("USAGE", `Cannot use --archive-folder: ${destinationText} is not an oci-archive: destination`);
      }
      if (options.compressionLevel !== undefined && destination.kind !== "archive") {
        throw new OcibootError("USAGE", `Cannot use --compression-level: ${destinationText} is not an oci-archive: destination`);
      }
      const log = transferLog(context, "copied", global.quiet);
      const copyOptions: CopyImageOptions = {
        signal: context.signal,
        withReferrers: options.withReferrers === true,
        ...log.hooks,
      };
      const source = await openSource(sourceText, global, context);
      try {
        let result;
        try {
          result = await copyTo(destination, source.store, source.reference, copyOptions, { global, context, archiveFolder: options.archiveFolder, level: options.compressionLevel });
        } finally {
          log.stop();
        }
        if (options.json === true || !global.quiet) context.stdout.write(formatCopyReport({ ...result, source: sourceText, destination: destinationText }, { json: options.json === true }));
      } finally {
        await source.close();
      }
    });
}

interface CopyEnvironment {
  global: GlobalOptions;
  context: CliContext;
  archiveFolder: string | undefined;
  level: number | undefined;
}

function copyTo(destination: Location, source: ReadableStore, reference: string, options: CopyImageOptions, environment: CopyEnvironment): Promise<CopyImageResult> {
  const { context, global, archiveFolder, level } = environment;
  const named = (name: string | undefined): CopyImageOptions => (name === undefined ? options : { ...options, targetReference: name });
  switch (destination.kind) {
    case "archive":
      return exportArchive(source, reference, resolvePath(context, destination.path), {
        ...named(destination.reference),
        ...(archiveFolder !== undefined ? { folder: archiveFolder } : {}),
        ...(level !== undefined ? { level } : {}),
      });
    case "layout":
      return copyImage(source, reference, new OciLayoutStore(resolvePath(context, destination.path)), named(destination.reference));
    case "registry":
      return withRepository(destination.reference, global, context, (repository, target) => {
        // As push does: a reference without tag or digest means `latest`; one with a digest must match the source.
        const tag = target.tag ?? (target.digest === undefined ? DEFAULT_TAG : undefined);
        return copyImage(source, reference, repository, { ...named(tag), ...(target.digest !== undefined ? { targetDigest: target.digest } : {}) });
      });
  }
}
