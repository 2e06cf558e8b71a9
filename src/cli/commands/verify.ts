import { Command } from "@commander-js/extra-typings";
import { OciLayoutStore } from "../../content/layout.ts";
import { OcibootError } from "../../errors.ts";
import { verifyDirectory, verifyImage, verifyLayoutStore, type VerifyReport } from "../../ops/verify.ts";
import type { CliContext } from "../context.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { openArchive, openSource, parseLocation } from "../sources.ts";
import { keyOption, loadKeys, trustFor } from "../keys.ts";
import { checkFetchedFolder } from "../../ops/signature-material.ts";
import { type VerifiedSigner, verifyStoredImageSignature, verifyStoredManifestSignature } from "../../ops/signature.ts";
import { parseReference } from "../../oci/reference.ts";

/** `ociboot verify`: exit 0 only if everything matches what was published. */
export function verifyCommand(context: CliContext) {
  return new Command("verify")
    .description("prove that fetched files, a store or an image are exactly what was published (exit 0 only if all match)")
    .argument("[source]", "registry reference, oci:DIR[:REF] or oci-archive:FILE[:REF]; none with --dir and --key: offline, from DIR/manifest.json")
    .option("--dir <dir>", "check the boot files fetch wrote into DIR against the image")
    .addOption(keyOption())
    .addOption(platformOption())
    .addOption(flavorOption())
    .addOption(roleOption())
    .addOption(nameOption())
    .option("--json", "print the report as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  ociboot verify 127.0.0.1:5000/os/metal:today --dir ./boot\n  ociboot verify oci:./onmetal            # every image and every blob of a store\n  ociboot verify ghcr.io/org/os:1.0       # download and check a whole image graph",
    )
    .action(async (sourceArgument, options, command) => {
      const global = globalOptions(command as never, context);
      const keys = await loadKeys(options.key, context);
      const pinned = sourceArgument === undefined ? undefined : pinnedDigestOf(sourceArgument);
      if (options.dir !== undefined && keys && (sourceArgument === undefined || pinned !== undefined)) {
        // Offline: the folder's own manifest.json and saved signature material, no registry.
        const offline = await checkFetchedFolder(resolvePath(context, options.dir), {
          keys,
          ...(pinned !== undefined ? { pinned } : {}),
          fileNames: parseNames(options.name),
          ...(options.role ? { roles: parseRoles(options.role) } : {}),
          signal: context.signal,
        });
        finish(context, { digest: offline.digest, items: offline.items, ok: offline.ok }, options, global.quiet, options.dir, [offline.signer]);
        return;
      }
      if (sourceArgument === undefined) {
        throw new OcibootError("USAGE", "Cannot verify: name a source, or give --dir DIR with --key to re-check a fetched folder offline");
      }
      const sourceText = sourceArgument;
      const location = parseLocation(sourceText);
      let report: VerifyReport;
      let signers: VerifiedSigner[] | undefined;
      if (keys && location.kind !== "registry" && location.reference === undefined && options.dir === undefined) {
        throw new OcibootError("USAGE", `Cannot verify a signature for all of ${sourceText}: name the image, ${sourceText}:REF`);
      }
      if (location.kind === "layout" && location.reference === undefined && options.dir === undefined) {
        report = await verifyLayoutStore(new OciLayoutStore(resolvePath(context, location.path)), context.signal);
      } else if (location.kind === "archive" && location.reference === undefined && options.dir === undefined) {
        // Reading the archive verifies every blob in it; then every image it names is checked complete.
        const archive = await openArchive(location.path, context);
        try {
          report = await verifyLayoutStore(archive.store, context.signal);
        } finally {
          await archive.close();
        }
      } else {
        const source = await openSource(sourceText, global, context);
        try {
          const trust = keys ? trustFor(keys, sourceText) : undefined;
          if (options.dir === undefined) {
            // The graph checked is the one whose signature verified (by digest), not a second answer to the tag.
            const trusted = trust ? await verifyStoredImageSignature(source.store, source.reference, trust, context.signal) : undefined;
            signers = trusted?.signers;
            report = await verifyImage(source.store, trusted?.root.digest ?? source.reference, context.signal);
          } else {
            const selection = selectionFrom(options);
            const trusted = trust ? await verifyStoredManifestSignature(source.store, source.reference, selection, trust, context.signal) : undefined;
            if (trusted) signers = [trusted.signer];
            report = await verifyDirectory(source.store, source.reference, resolvePath(context, options.dir), {
              ...selection,
              fileNames: parseNames(options.name),
              ...(options.role ? { roles: parseRoles(options.role) } : {}),
              signal: context.signal,
            });
            if (trusted && report.digest !== trusted.digest) {
              throw new OcibootError("SIGNATURE", `Cannot verify ${sourceText}: it resolved to ${trusted.digest}, whose signature verified, then to ${report.digest}`);
            }
          }
        } finally {
          await source.close();
        }
      }
      finish(context, report, options, global.quiet, sourceText, signers);
    });
}

/** The digest a registry reference pins (`host/repo@sha256:…`), if any. */
function pinnedDigestOf(sourceText: string): string | undefined {
  const location = parseLocation(sourceText);
  return location.kind === "registry" ? parseReference(location.reference).digest : undefined;
}

function finish(
  context: CliContext,
  report: VerifyReport,
  options: { json?: true },
  quiet: boolean,
  what: string,
  signers: readonly VerifiedSigner[] | undefined,
): void {
  context.stdout.write(formatVerifyReport(report, options.json === true, quiet, signers));
  const failed = report.items.filter((item) => !item.ok);
  if (failed.length > 0) {
    throw new OcibootError("INTEGRITY", `Cannot verify ${what}: ${failed.length} of ${report.items.length} items do not match`, {
      details: { failed: failed.map((item) => item.name) },
    });
  }
}

function formatVerifyReport(report: VerifyReport, json: boolean, quiet: boolean, signers: readonly VerifiedSigner[] | undefined): string {
  if (json) return `${JSON.stringify(signers ? { ...report, signers } : report, null, 2)}\n`;
  if (quiet) return "";
  const lines = (signers ?? []).map((signer) => `SIGNED  ${signer.signedDigest} by ${signer.fingerprint} (${signer.key})`);
  lines.push(...report.items.map((item) => `${item.ok ? "OK      " : "FAILED  "}${item.role ? `${item.role} ` : ""}${item.name}${item.problem ? `: ${item.problem}` : ""}`));
  lines.push(report.ok ? `All ${report.items.length} items verified.` : `${report.items.filter((item) => !item.ok).length} of ${report.items.length} items FAILED.`);
  return `${lines.join("\n")}\n`;
}
