import { Command } from "@commander-js/extra-typings";
import { tagImage } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot tag SRC DST`: another name for a local image. */
export function tagCommand(context: CliContext) {
  return new Command("tag")
    .description("tag a local image: SRC is a digest (with or without sha256:), a unique digest prefix such as the IMAGE ID of list, or a reference")
    .argument("<src>", "image digest, ID or reference in the local store")
    .argument("<dst>", "full reference to tag it as, e.g. ghcr.io/user/project:1.0")
    .option("--json", JSON_HELP)
    .addHelpText(
      "after",
      examples([
        'ociboot --store-path ./onmetal tag "$(ociboot --store-path ./onmetal list | awk \'$1 == "127.0.0.1:5000/os/single" {print $3}\')" 127.0.0.1:5000/os/single:stable   # by IMAGE ID',
        "ociboot tag ghcr.io/me/boot:1 ghcr.io/me/boot:stable",
      ]),
    )
    .action(async (source, destination, options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const result = await tagImage(store, source, destination);
      printResult(context, options, `Successfully tagged ${result.reference} with ${result.source.digest}\n`, { reference: result.reference, digest: result.source.digest }, global.quiet);
    });
}
