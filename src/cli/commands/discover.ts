import { Command } from "@commander-js/extra-typings";
import { discoverReferrers } from "../../ops/referrers.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { openSource } from "../sources.ts";
import { formatReferrerJson, formatReferrerTree } from "./referrers-output.ts";

/** `ociboot discover REF [--json]`: the artifacts that refer to REF, as `oras discover`. */
export function discoverCommand(context: CliContext) {
  return new Command("discover")
    .description("list the artifacts attached to an image (its OCI 1.1 referrers), as oras discover")
    .argument("<ref>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .option("--artifact-type <type>", "only referrers of this artifactType")
    .option("--json", "print the subject and the referrer descriptors as JSON")
    .addHelpText(
      "after",
      examples(["ociboot discover 127.0.0.1:5000/os/metal:today", "ociboot discover 127.0.0.1:5000/os/metal:today --artifact-type build/log --json"]),
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const source = await openSource(ref, global, context);
      try {
        const filter = options.artifactType === undefined ? {} : { artifactType: options.artifactType };
        const listing = await discoverReferrers(source.store, source.reference, { ...filter, signal: context.signal });
        context.stdout.write(options.json ? formatReferrerJson(listing, ref) : formatReferrerTree(listing, ref));
      } finally {
        await source.close();
      }
    });
}
