import { Command } from "@commander-js/extra-typings";
import { inspectImage } from "../../ops/inspect.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { formatGoIndentedJson, openLocalStore } from "./store-output.ts";

/** `ociboot inspect REF`: `{descriptor, manifest, config}` of a local image, as onmetal-image prints it. */
export function inspectCommand(context: CliContext) {
  return new Command("inspect")
    .description("show a local image's descriptor, manifest and config as JSON (an index shows each of its manifests)")
    .argument("<ref>", "reference, digest or IMAGE ID")
    .option("--json", "the same output (it is JSON already)")
    .addHelpText("after", examples(["ociboot --store-path ./onmetal inspect 127.0.0.1:5000/os/single:1"]))
    .action(async (name, _options, command) => {
      const store = openLocalStore(globalOptions(command as never, context), context);
      const result = await inspectImage(store, name);
      context.stdout.write(formatGoIndentedJson(result.image));
    });
}
