import { Command } from "@commander-js/extra-typings";
import { parsePlatform } from "../../oci/platform.ts";
import type { CopyImageOptions } from "../../ops/copy-image.ts";
import type { CliContext } from "../context.ts";
import { openDestination } from "../destinations.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { openSource, parseLocation, sourceTagOf } from "../sources.ts";
import { compressionLevelOption } from "../compression-option.ts";
import { OcibootError } from "../../errors.ts";
import { formatCopyReport } from "./copy-output.ts";
import { transferLog } from "./transfer-log.ts";
import { loadTrust, trustFor, withTrustOptions } from "../keys.ts";
import { type PushReport, pushInto } from "../../content/archive-placement.ts";
import type { ReadableStore, WritableStore } from "../../content/store.ts";
import { verifyStoredImageSignature } from "../../ops/signature.ts";

/** `ociboot copy SRC DST`: an image between registries, OCI layouts and OCI archives, in any direction. */
export function copyCommand(context: CliContext) {
  return withTrustOptions(new Command("copy")
    .description(
      "copy an image (a whole multi-arch index too) between a registry, an OCI layout (oci:DIR[:REF]) and an OCI archive (oci-archive:FILE[:REF], .tar/.tar.gz/.tar.xz/.tar.zst), digests preserved, every blob verified",
    )
    .argument("<source>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .argument("<destination>", "registry reference (host/repo:tag), oci:DIR[:REF] or oci-archive:FILE[:REF]; REF names the copy")
    .option("--with-referrers", "also copy the referrers of the image (OCI 1.1 subject: build logs, SBOMs, signatures)")
    .option("--archive-folder <name>", "write the layout under this folder of the archive (onmetal: the Garden Linux .oci.tar.xz shape)")
    .option(
      "--platform <os/arch[/variant]>",
      "copy only this platform of an index (repeatable); the copy is a new index listing only those, so its digest differs",
      (value: string, previous: string[] = []) => [...previous, value],
    ))
    .addOption(compressionLevelOption())
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      examples([
        "ociboot copy 127.0.0.1:5000/os/metal:today oci-archive:metal.oci.tar.gz --with-referrers            # export, build files too",
        "ociboot copy oci-archive:metal.oci.tar.gz registry.airgap:5000/mirror/metal:today --with-referrers   # import on the other side",
        "ociboot copy 127.0.0.1:5000/os/metal:today oci-archive:metal-onmetal.oci.tar.xz --archive-folder onmetal",
        "ociboot copy 127.0.0.1:5000/os/metal:today 127.0.0.1:5000/os/metal-amd64:today --platform linux/amd64   # a new, smaller index",
        "ociboot copy oci:./onmetal:127.0.0.1:5000/os/single:1 127.0.0.1:5000/os/single:copied",
      ]),
    )
    .action(async (sourceText, destinationText, options, command) => {
      const global = globalOptions(command as never, context);
      // With its referrers beside it, an unnamed image is one of several index.json entries, which
      // skopeo and other layout readers cannot choose from: it takes the source's tag (docs/archive-names.md).
      const location = parseLocation(destinationText);
      if (options.compressionLevel !== undefined && location.kind !== "archive") {
        throw new OcibootError("USAGE", `Cannot use --compression-level: ${destinationText} is not an oci-archive: destination`);
      }
      const unnamedArchive = location.kind === "archive" && location.reference === undefined;
      const destinationName = unnamedArchive && options.withReferrers === true ? `${destinationText}:${sourceTagOf(parseLocation(sourceText))}` : destinationText;
      const destination = openDestination(destinationName, global, context, {
        ...(options.archiveFolder !== undefined ? { archiveFolder: options.archiveFolder } : {}),
        ...(options.compressionLevel !== undefined ? { level: options.compressionLevel } : {}),
      });
      const trustAnchors = await loadTrust(options, context);
      const trust = trustAnchors ? trustFor(trustAnchors, sourceText) : undefined;
      const log = transferLog(context, "copied", global.quiet);
      const copyOptions: CopyImageOptions = {
        ...(trust ? { trust } : {}),
        signal: context.signal,
        ...(options.platform !== undefined ? { platforms: options.platform.map(parsePlatform) } : {}),
        withReferrers: options.withReferrers === true,
        ...log.hooks,
      };
      // A compressed archive's large blobs go straight into a layout or registry destination as it
      // is read, shown and counted as the copy's own; with --key, only once the signature verified (docs/archives.md).
      const pushed = { count: 0, bytes: 0 };
      const { onPlanned, onBytes, onCopied } = log.hooks;
      const report: PushReport = {
        started: (blob) => onPlanned?.([blob]),
        bytes: (blob, done) => onBytes?.(blob, done),
        pushed: (blob) => {
          pushed.count++;
          pushed.bytes += blob.size;
          onCopied?.(blob);
        },
      };
      const openCopySource = (target: (ReadableStore & WritableStore) | undefined) =>
        openSource(sourceText, global, context, {
          ...(target ? { archiveBlobs: pushInto(target, report) } : {}),
          ...(target && trust ? { beforePlacing: (store: ReadableStore, reference: string) => verifyStoredImageSignature(store, reference, trust, context.signal) } : {}),
        });
      let result;
      try {
        result = await destination.copyFrom(openCopySource, copyOptions);
        result = { ...result, copied: { count: result.copied.count + pushed.count, bytes: result.copied.bytes + pushed.bytes } };
      } finally {
        log.stop();
      }
      if (options.json === true || !global.quiet) context.stdout.write(formatCopyReport({ ...result, source: sourceText, destination: destinationText }, { json: options.json === true }));
    });
}
