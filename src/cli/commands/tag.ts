import { Command } from "@commander-js/extra-typings";
import { tagImage } from "../../ops/store-ops.ts";
import type { CliContext } from "../context.ts";
import { globalOptions } from "../global-options.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot tag SRC DST`: another name for a local image. */
export function tagCommand(context: CliContext) {
  return new Command("tag")
    .description("tag a local image: SRC is a digest (with or without sha256:), a unique digest prefix such as the IMAGE ID of list, or a reference")
    .argument("<src>", "image digest, ID or reference in the local store")
    .argument("<dst>", "full reference to tag it as, e.g. ghcr.io/user/project:1.0")
    .addHelpText("after", "\nExamples:\n  ociboot --store-path ./onmetal tag f0dcfde4f8b4 127.0.0.1:5000/gardenlinux:today\n  ociboot tag ghcr.io/user/project:1.0 ghcr.io/user/project:stable")
    .action(async (source, destination, _options, command) => {
      const global = globalOptions(command as never, context);
      const result = await tagImage(openLocalStore(global, context), source, destination);
      if (!global.quiet) context.stdout.write(`Successfully tagged ${result.reference} with ${result.source.digest}\n`);
    });
}
