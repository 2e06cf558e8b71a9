import { Command } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { verifyDirectory, verifyImage, verifyLayoutStore, type VerifyReport } from "../../ops/verify.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { openSource, openStoreOrImage } from "../sources.ts";

/** `ociboot verify`: exit 0 only if everything matches what was published. */
export function verifyCommand(context: CliContext) {
  return new Command("verify")
    .description("prove that fetched files, a store or an image are exactly what was published (exit 0 only if all match)")
    .argument("<source>", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .option("--dir <dir>", "check the boot files fetch wrote into DIR against the image")
    .addOption(platformOption())
    .addOption(flavorOption())
    .addOption(roleOption())
    .addOption(nameOption())
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      examples([
        "ociboot verify 127.0.0.1:5000/os/metal:today --dir ./boot      # the files fetch wrote",
        "ociboot verify oci:./onmetal                                   # every image and every blob of a store",
        "ociboot verify ghcr.io/me/boot:1                               # download and check a whole image graph",
      ]),
    )
    .action(async (sourceText, options, command) => {
      const global = globalOptions(command as never, context);
      const opened = options.dir === undefined ? await openStoreOrImage(sourceText, global, context) : await openSource(sourceText, global, context);
      let report: VerifyReport;
      try {
        if (opened.reference === undefined) report = await verifyLayoutStore(opened.store, context.signal);
        else if (options.dir === undefined) report = await verifyImage(opened.store, opened.reference, context.signal);
        else {
          report = await verifyDirectory(opened.store, opened.reference, resolvePath(context, options.dir), {
            ...selectionFrom(options),
            fileNames: parseNames(options.name),
            ...(options.role ? { roles: parseRoles(options.role) } : {}),
            signal: context.signal,
          });
        }
      } finally {
        await opened.close();
      }
      const failed = report.items.filter((item) => !item.ok);
      // With --json a failed run prints one document, the error, which carries the report.
      if (failed.length === 0 || options.json !== true) context.stdout.write(formatVerifyReport(report, options.json === true, global.quiet));
      if (failed.length > 0) {
        throw new OcibootError("INTEGRITY", `Cannot verify ${sourceText}: ${failed.length} of ${report.items.length} items do not match`, {
          details: { failed: failed.map((item) => item.name), ...(options.json === true ? { report } : {}) },
        });
      }
    });
}

function formatVerifyReport(report: VerifyReport, json: boolean, quiet: boolean): string {
  if (json) return `${JSON.stringify(report, null, 2)}\n`;
  if (quiet) return "";
  const lines = report.items.map((item) => `${item.ok ? "OK      " : "FAILED  "}${item.role ? `${item.role} ` : ""}${item.name}${item.problem ? `: ${item.problem}` : ""}`);
  lines.push(report.ok ? `All ${report.items.length} items verified.` : `${report.items.filter((item) => !item.ok).length} of ${report.items.length} items FAILED.`);
  return `${lines.join("\n")}\n`;
}
