import { Command } from "@commander-js/extra-typings";
import { deleteImage } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import { globalOptions } from "../global-options.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot delete REF`: removes a tag (or, for a digest or ID, every entry of that image); `prune` frees the blobs. */
export function deleteCommand(context: CliContext) {
  return new Command("delete")
    .alias("rm")
    .description("remove a tag from the local store; a digest or IMAGE ID removes the image's every entry (run prune to free space)")
    .argument("<ref>", "reference, digest or IMAGE ID")
    .action(async (name, _options, command) => {
      const global = globalOptions(command as never, context);
      await deleteImage(openLocalStore(global, context), name);
      if (!global.quiet) context.stdout.write(`Successfully deleted ${name}\n`);
    });
}
