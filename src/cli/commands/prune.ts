import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { pruneStore } from "../../ops/prune.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { formatBytes } from "../format.ts";
import { globalOptions } from "../global-options.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot prune`: removes blobs no tag or image entry reaches. */
export function pruneCommand(context: CliContext) {
  return new Command("prune")
    .alias("gc")
    .description("remove blobs that no entry of the local store reaches, and abandoned partial downloads")
    .addOption(new Option("--grace <seconds>", "keep unreferenced blobs and partial downloads younger than this (another process may be about to tag or resume them)").default("600"))
    .option("--dry-run", "only report what would be removed")
    .option("--json", JSON_HELP)
    .addHelpText("after", examples(["ociboot --store-path ./onmetal prune --dry-run", "ociboot prune --grace 0"]))
    .action(async (options, command) => {
      const global = globalOptions(command as never, context);
      const graceSeconds = Number(options.grace);
      if (!Number.isFinite(graceSeconds) || graceSeconds < 0) {
        throw new OcibootError("USAGE", `Cannot prune: --grace ${options.grace} is not a number of seconds`);
      }
      const result = await pruneStore(openLocalStore(global, context), { graceMs: graceSeconds * 1000, dryRun: options.dryRun === true });
      const verb = options.dryRun ? "Would remove" : "Removed";
      let text = `${verb} ${result.removed.length} blob${result.removed.length === 1 ? "" : "s"} (${formatBytes(result.removedBytes)})`;
      if (result.removedPartials.length > 0) {
        const partialBytes = result.removedPartials.reduce((sum, partial) => sum + partial.size, 0);
        text += `, ${result.removedPartials.length} abandoned partial download${result.removedPartials.length === 1 ? "" : "s"} (${formatBytes(partialBytes)})`;
      }
      if (result.removedTemporaryFiles > 0) {
        text += `, ${result.removedTemporaryFiles} temporary file${result.removedTemporaryFiles === 1 ? "" : "s"} left by killed runs`;
      }
      if (result.keptRecent > 0) text += `; kept ${result.keptRecent} unreferenced blob${result.keptRecent === 1 ? "" : "s"} younger than ${graceSeconds}s`;
      printResult(context, options, `${text}\n`, {
        dryRun: options.dryRun === true,
        removed: result.removed.length,
        removedBytes: result.removedBytes,
        keptRecent: result.keptRecent,
        removedPartials: result.removedPartials.length,
        removedPartialBytes: result.removedPartials.reduce((sum, partial) => sum + partial.size, 0),
        removedTemporaryFiles: result.removedTemporaryFiles,
      }, global.quiet);
    });
}
