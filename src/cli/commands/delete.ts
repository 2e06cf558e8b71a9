import { Command } from "@commander-js/extra-typings";
import { deleteImage } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot delete REF`: removes a tag (or, for a digest or ID, every entry of that image); `prune` frees the blobs. */
export function deleteCommand(context: CliContext) {
  return new Command("delete")
    .alias("rm")
    .description("remove a tag from the local store; a digest or IMAGE ID removes the image's every entry (run prune to free space)")
    .argument("<ref>", "reference, digest or IMAGE ID")
    .option("--json", JSON_HELP)
    .addHelpText("after", examples(["ociboot --store-path ./onmetal delete 127.0.0.1:5000/os/single:stable"]))
    .action(async (name, options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      await deleteImage(store, name);
      printResult(context, options, `Successfully deleted ${name}\n`, { deleted: name }, global.quiet);
    });
}
