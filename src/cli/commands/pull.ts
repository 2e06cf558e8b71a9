import { Command } from "@commander-js/extra-typings";
import { pullImage } from "../../ops/push-pull.ts";
import type { CliContext } from "../context.ts";
import { globalOptions } from "../global-options.ts";
import { withRepository } from "./registry-access.ts";
import { transferLog } from "./transfer-log.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot pull REF`: an image from a registry into the local store, every blob verified. */
export function pullCommand(context: CliContext) {
  return new Command("pull")
    .description("pull an image (a whole multi-arch index too) into the local store, every blob verified")
    .argument("<ref>", "registry reference, e.g. ghcr.io/gardenlinux/gardenlinux:1592.1")
    .action(async (name, _options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const copyOptions = { signal: context.signal, ...transferLog(context, "pulled", global.quiet) };
      const result = await withRepository(name, global, context, (repository) => pullImage(repository, store, name, copyOptions));
      context.stdout.write(`Successfully pulled ${name} ${result.descriptor.digest.slice(result.descriptor.digest.indexOf(":") + 1)}\n`);
    });
}
