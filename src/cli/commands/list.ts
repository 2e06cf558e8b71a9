import { Command } from "@commander-js/extra-typings";
import { listImages } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { formatImageJson, formatImageTable, openLocalStore } from "./store-output.ts";

/** `ociboot list`: the images in the local store, as onmetal-image lists them. */
export function listCommand(context: CliContext) {
  return new Command("list")
    .alias("ls")
    .description("list the images in the local store (REPOSITORY, TAG, IMAGE ID)")
    .option("--json", "print a JSON array with full digests")
    .option("--all", "also referrers (attached files, signatures) and untagged duplicates of tagged images, with a TYPE column")
    .addHelpText("after", examples(["ociboot --store-path ./onmetal list", "ociboot list --json"]))
    .action(async (options, command) => {
      const store = openLocalStore(globalOptions(command as never, context), context);
      const all = options.all === true;
      const listings = await listImages(store, { all });
      context.stdout.write(options.json ? formatImageJson(listings) : formatImageTable(listings, { all }));
    });
}
