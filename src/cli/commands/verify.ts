import { Command } from "@commander-js/extra-typings";
import { OciLayoutStore } from "../../content/layout.ts";
import { OcibootError } from "../../errors.ts";
import { parseReference } from "../../oci/reference.ts";
import type { VerifiedSigner } from "../../ops/signature.ts";
import type { DirectoryCheckOptions, VerifyReport, WholeStore } from "../../ops/verify.ts";
import { type VerifyRequest, verifyRequested, type VerifySource } from "../../ops/verify-request.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { loadTrust, signerLabel, trustFor, withTrustOptions } from "../keys.ts";
import { resolvePath } from "../paths.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { openArchive, openSource, parseLocation } from "../sources.ts";

/** `ociboot verify`: exit 0 only if everything matches what was published. */
export function verifyCommand(context: CliContext) {
  return withTrustOptions(new Command("verify")
    .description("prove that fetched files, a store or an image are exactly what was published (exit 0 only if all match)")
    .argument("[source]", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]; without it, --dir DIR is checked against its own manifest.json")
    .option("--dir <dir>", "check the boot files fetch wrote into DIR against the image (or, with no source, against DIR/manifest.json)"))
    .addOption(platformOption())
    .addOption(flavorOption())
    .addOption(roleOption())
    .addOption(nameOption())
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      examples([
        "ociboot verify 127.0.0.1:5000/os/metal:today --dir ./boot      # the files fetch wrote",
        "ociboot verify --dir ./boot                                    # offline, from ./boot/manifest.json",
        "ociboot verify oci:./onmetal                                   # every image and every blob of a store",
        "ociboot verify ghcr.io/me/boot:1                               # download and check a whole image graph",
      ]) + "\nREF@sha256:… --dir DIR checks offline when DIR/manifest.json is that digest; with --key the saved signature too.",
    )
    .action(async (sourceText, options, command) => {
      const global = globalOptions(command as never, context);
      const anchors = await loadTrust(options, context);
      const check: DirectoryCheckOptions = { fileNames: parseNames(options.name), signal: context.signal };
      if (options.role) check.roles = parseRoles(options.role);
      const request: VerifyRequest = {
        check,
        selection: selectionFrom(options),
        openImage: () => openSource(sourceText ?? "", global, context),
        openWholeStore: () => openWholeStore(sourceText ?? "", context),
        signal: context.signal,
      };
      if (sourceText !== undefined) request.source = verifySourceOf(sourceText);
      if (options.dir !== undefined) request.directory = resolvePath(context, options.dir);
      if (anchors) request.trust = { anchors, forSource: sourceText === undefined ? anchors : trustFor(anchors, sourceText) };
      const { report, signers } = await verifyRequested(request);
      finish(context, report, options, global.quiet, sourceText ?? options.dir ?? "", signers);
    });
}

/** What the source text names, for the operation to choose its check. */
function verifySourceOf(text: string): VerifySource {
  const location = parseLocation(text);
  if (location.kind !== "registry") return { kind: location.kind, text, whole: location.reference === undefined };
  const pinned = parseReference(location.reference).digest;
  return pinned === undefined ? { kind: "registry", text } : { kind: "registry", text, pinned };
}

/** A layout or archive named without REF, as the whole store: every image and blob in it. */
async function openWholeStore(text: string, context: CliContext): Promise<{ store: WholeStore; close(): Promise<void> }> {
  const location = parseLocation(text);
  if (location.kind === "layout") return { store: new OciLayoutStore(resolvePath(context, location.path)), close: async () => undefined };
  // A corrupt blob is one failed item among the others, not the end of the report.
  if (location.kind !== "archive") throw new OcibootError("USAGE", `Cannot verify all of ${text}: it is not a store`);
  return openArchive(location.path, context, { keepCorrupt: true });
}

/** Prints the report and fails when any item failed; with --json a failed run prints one document, the error, which carries the report. */
function finish(
  context: CliContext,
  report: VerifyReport,
  options: { json?: true },
  quiet: boolean,
  what: string,
  signers: readonly VerifiedSigner[] | undefined,
): void {
  const failed = report.items.filter((item) => !item.ok);
  if (failed.length === 0 || options.json !== true) context.stdout.write(formatVerifyReport(report, options.json === true, quiet, signers));
  if (failed.length > 0) {
    // The names reach stderr too, for scripts that run with --quiet or read only errors.
    const named = failed.slice(0, 3).map((item) => item.name).join(", ") + (failed.length > 3 ? ", …" : "");
    throw new OcibootError("INTEGRITY", `Cannot verify ${what}: ${failed.length} of ${report.items.length} items do not match (${named})`, {
      details: { failed: failed.map((item) => item.name), ...(options.json === true ? { report } : {}) },
    });
  }
}



function formatVerifyReport(report: VerifyReport, json: boolean, quiet: boolean, signers: readonly VerifiedSigner[] | undefined): string {
  if (json) return `${JSON.stringify(signers ? { ...report, signers } : report, null, 2)}\n`;
  if (quiet) return "";
  const lines = report.manifestFrom ? [`Checking against ${report.manifestFrom} (${report.digest})`] : [];
  lines.push(...(signers ?? []).map((signer) => `SIGNED  ${signer.signedDigest} by ${signerLabel(signer)}`));
  lines.push(...report.items.map((item) => `${item.ok ? "OK      " : "FAILED  "}${item.role ? `${item.role} ` : ""}${item.name}${item.problem ? `: ${item.problem}` : ""}`));
  lines.push(report.ok ? `All ${report.items.length} items verified.` : `${report.items.filter((item) => !item.ok).length} of ${report.items.length} items FAILED.`);
  return `${lines.join("\n")}\n`;
}
