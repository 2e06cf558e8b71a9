import { Command } from "@commander-js/extra-typings";
import type { CopyImageOptions } from "../../ops/copy-image.ts";
import type { CliContext } from "../context.ts";
import { openDestination } from "../destinations.ts";
import { globalOptions } from "../global-options.ts";
import { openSource } from "../sources.ts";
import { formatCopyReport } from "./copy-output.ts";
import { transferLog } from "./transfer-log.ts";

/** `ociboot copy SRC DST`: an image between registries, OCI layouts and OCI archives, in any direction. */
export function copyCommand(context: CliContext) {
  return new Command("copy")
    .description(
      "copy an image (a whole multi-arch index too) between a registry, an OCI layout (oci:DIR[:REF]) and an OCI archive (oci-archive:FILE[:REF], .tar/.tar.gz/.tar.xz), digests preserved, every blob verified",
    )
    .argument("<source>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .argument("<destination>", "registry reference (host/repo:tag), oci:DIR[:REF] or oci-archive:FILE[:REF]; REF names the copy")
    .option("--with-referrers", "also copy the referrers of the image (OCI 1.1 subject: build logs, SBOMs, signatures)")
    .option("--archive-folder <name>", "write the layout under this folder of the archive (onmetal: the Garden Linux .oci.tar.xz shape)")
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
      const destination = openDestination(destinationText, global, context, options.archiveFolder !== undefined ? { archiveFolder: options.archiveFolder } : {});
      const copyOptions: CopyImageOptions = {
        signal: context.signal,
        withReferrers: options.withReferrers === true,
        ...transferLog(context, "copied", global.quiet),
      };
      const source = await openSource(sourceText, global, context);
      try {
        const result = await destination.copyFrom(source.store, source.reference, copyOptions);
        context.stdout.write(formatCopyReport({ ...result, source: sourceText, destination: destinationText }, { json: options.json === true }));
      } finally {
        await source.close();
      }
    });
}
