import { Command } from "@commander-js/extra-typings";
import { readManifest } from "../../ops/manifest-read.ts";
import { explicitSelection, flavorOption, platformOption } from "../boot-file-options.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { openSource } from "../sources.ts";

/** `ociboot digest REF`: the digest of a manifest or index, computed from its bytes, as `crane digest`. */
export function digestCommand(context: CliContext) {
  return new Command("digest")
    .description("print the digest of a manifest or index, computed from its bytes (never taken from a header)")
    .argument("<ref>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .addOption(platformOption("the index itself"))
    .addOption(flavorOption())
    .option("--json", "print the descriptor (mediaType, digest, size) as JSON")
    .addHelpText(
      "after",
      examples(["ociboot digest 127.0.0.1:5000/os/metal:today", 'ociboot fetch "127.0.0.1:5000/os/metal@$(ociboot digest 127.0.0.1:5000/os/metal:today)" -o ./pinned']),
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const source = await openSource(ref, global, context);
      try {
        const selection = explicitSelection(options);
        const { descriptor } = await readManifest(source.store, source.reference, selection, context.signal);
        context.stdout.write(options.json ? `${JSON.stringify(descriptor, null, 2)}\n` : `${descriptor.digest}\n`);
      } finally {
        await source.close();
      }
    });
}
