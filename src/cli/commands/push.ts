import { Command } from "@commander-js/extra-typings";
import { pushImage } from "../../ops/push-pull.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { withRepository } from "./registry-access.ts";
import { transferLog } from "./transfer-log.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot push REF`: a local image to the registry its reference names. */
export function pushCommand(context: CliContext) {
  return new Command("push")
    .description("push a local image (an index with all its manifests) to the registry its reference names; blobs the registry has are skipped")
    .argument("<ref>", "full reference as tagged in the local store, e.g. 127.0.0.1:5000/gardenlinux:today")
    .option("--json", JSON_HELP)
    .addHelpText("after", examples(["ociboot --store-path ./onmetal push 127.0.0.1:5000/os/single:1", "ociboot push ghcr.io/me/boot:1 --json"]))
    .action(async (name, options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const log = transferLog(context, "pushed", global.quiet);
      const copyOptions = { signal: context.signal, ...log.hooks };
      let descriptor;
      try {
        descriptor = await withRepository(name, global, context, (repository) => pushImage(store, repository, name, copyOptions));
      } finally {
        log.stop();
      }
      const text = `Successfully pushed ${name} ${descriptor.digest.slice(descriptor.digest.indexOf(":") + 1)}\n`;
      printResult(context, options, text, { reference: name, digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size }, global.quiet);
    });
}
