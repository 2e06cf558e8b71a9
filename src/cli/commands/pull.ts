import { Command, Option } from "@commander-js/extra-typings";
import { pullImage, type PullOptions } from "../../ops/push-pull.ts";
import { flavorOption, selectionFrom } from "../boot-file-options.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { withRepository } from "./registry-access.ts";
import { transferLog } from "./transfer-log.ts";
import { openLocalStore } from "./store-output.ts";
import { loadTrust, withTrustOptions } from "../keys.ts";

/** `ociboot pull REF`: an image from a registry into the local store, every blob verified. */
export function pullCommand(context: CliContext) {
  return withTrustOptions(new Command("pull")
    .description("pull an image (a whole multi-arch index, or one platform of it) into the local store, every blob verified")
    .argument("<ref>", "registry reference, e.g. ghcr.io/gardenlinux/gardenlinux:1592.1")
    .addOption(new Option("--platform <os/arch[/variant]>", "pull only this platform's manifest of a multi-arch index, tagged as REF"))
    .addOption(flavorOption()))
    .option("--json", JSON_HELP)
    .addHelpText(
      "after",
      examples(["ociboot --store-path ./onmetal pull 127.0.0.1:5000/os/metal:today", "ociboot pull 127.0.0.1:5000/os/metal:today --platform linux/arm64"]),
    )
    .action(async (name, options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const trustAnchors = await loadTrust(options, context);
      const log = transferLog(context, "pulled", global.quiet);
      const copyOptions: PullOptions = { signal: context.signal, ...log.hooks, ...(trustAnchors ? { trust: trustAnchors } : {}) };
      // Without either, the whole index, as onmetal-image pulls it.
      if (options.platform !== undefined || options.flavor !== undefined) copyOptions.selection = selectionFrom(options);
      let result;
      try {
        result = await withRepository(name, global, context, (repository) => pullImage(repository, store, name, copyOptions));
      } finally {
        log.stop();
      }
      const { descriptor } = result;
      const text = `Successfully pulled ${name} ${descriptor.digest.slice(descriptor.digest.indexOf(":") + 1)}\n`;
      const signers = result.signers ? { signers: result.signers } : {};
      printResult(context, options, text, { reference: name, digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size, ...signers }, global.quiet);
    });
}
