import { Command } from "@commander-js/extra-typings";
import { readManifest } from "../../ops/manifest-read.ts";
import { explicitSelection, flavorOption, platformOption } from "../boot-file-options.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { openSource } from "../sources.ts";

/** `ociboot manifest REF`: the exact bytes of a manifest or index, verified first, as `crane manifest`. */
export function manifestCommand(context: CliContext) {
  return new Command("manifest")
    .description("print a manifest or index exactly as stored, after checking it against its digest (as crane manifest)")
    .argument("<ref>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .addOption(platformOption("the index itself"))
    .addOption(flavorOption())
    .option("--descriptor", "print the descriptor (mediaType, digest, size) instead of the manifest")
    .option("--json", "the same output (manifests and descriptors are JSON already)")
    .addHelpText(
      "after",
      examples([
        "ociboot manifest 127.0.0.1:5000/os/metal:today",
        "ociboot manifest 127.0.0.1:5000/os/metal:today --platform linux/arm64 | jq .layers",
        "ociboot manifest oci:./onmetal:127.0.0.1:5000/os/metal:today --descriptor",
      ]),
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const source = await openSource(ref, global, context);
      try {
        const selection = explicitSelection(options);
        const read = await readManifest(source.store, source.reference, selection, context.signal);
        if (options.descriptor) context.stdout.write(`${JSON.stringify(read.descriptor, null, 2)}\n`);
        else context.stdout.write(new TextDecoder().decode(read.bytes));
      } finally {
        await source.close();
      }
    });
}
