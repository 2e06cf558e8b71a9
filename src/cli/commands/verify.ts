import { Command } from "@commander-js/extra-typings";
import { OciLayoutStore } from "../../content/layout.ts";
import { isOcibootError, OcibootError } from "../../errors.ts";
import type { Digest } from "../../oci/digest.ts";
import { parseReference } from "../../oci/reference.ts";
import { type VerifiedSigner, verifyStoredImageSignature, verifyStoredManifestSignature } from "../../ops/signature.ts";
import { verifySignedFolder } from "../../ops/verify-signed.ts";
import {
  canVerifyOffline,
  type DirectoryCheckOptions,
  readSavedFetch,
  type SavedFetch,
  savedFetchMatches,
  verifyDirectory,
  verifyImage,
  verifyLayoutStore,
  verifySavedDirectory,
  type VerifyReport,
} from "../../ops/verify.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { loadTrust, signerLabel, trustFor, withTrustOptions } from "../keys.ts";
import { resolvePath } from "../paths.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { type Location, openArchive, openSource, parseLocation } from "../sources.ts";

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
      const trustAnchors = await loadTrust(options, context);
      const directory = options.dir === undefined ? undefined : resolvePath(context, options.dir);
      const check: DirectoryCheckOptions = { fileNames: parseNames(options.name), signal: context.signal };
      if (options.role) check.roles = parseRoles(options.role);
      const what = sourceText ?? options.dir ?? "";
      const pinned = sourceText === undefined ? undefined : pinnedDigestOf(parseLocation(sourceText));
      if (directory !== undefined && trustAnchors && (sourceText === undefined || pinned !== undefined)) {
        // Offline, signature included: the folder's own manifest.json and saved signature material (docs/trust.md).
        const { signer, ...report } = await verifySignedFolder(directory, { trust: trustAnchors, ...(pinned !== undefined ? { pinned } : {}), ...check });
        finish(context, report, options, global.quiet, what, [signer]);
        return;
      }
      let report: VerifyReport;
      let signers: VerifiedSigner[] | undefined;
      if (sourceText === undefined) {
        if (directory === undefined) {
          throw new OcibootError("USAGE", "Cannot verify: name an image (REF, oci:DIR, oci-archive:FILE) or a folder fetch wrote (--dir DIR)");
        }
        report = await verifySavedDirectory(await readSavedFetch(directory), check);
      } else {
        const location = parseLocation(sourceText);
        if (trustAnchors && location.kind !== "registry" && location.reference === undefined && directory === undefined) {
          throw new OcibootError("USAGE", `Cannot verify a signature for all of ${sourceText}: name the image, ${sourceText}:REF`);
        }
        const saved = directory === undefined ? undefined : await pinnedSavedFetch(location, directory, check);
        if (saved) {
          report = await verifySavedDirectory(saved, check);
        } else if (location.kind === "layout" && location.reference === undefined && directory === undefined) {
          report = await verifyLayoutStore(new OciLayoutStore(resolvePath(context, location.path)), context.signal);
        } else if (location.kind === "archive" && location.reference === undefined && directory === undefined) {
          // A corrupt blob is one failed item among the others, not the end of the report.
          const archive = await openArchive(location.path, context, { keepCorrupt: true });
          try {
            report = await verifyLayoutStore(archive.store, context.signal);
          } finally {
            await archive.close();
          }
        } else {
          const source = await openSource(sourceText, global, context);
          try {
            const trust = trustAnchors ? trustFor(trustAnchors, sourceText) : undefined;
            if (directory === undefined) {
              // The graph checked is the one whose signature verified (by digest), not a second answer to the tag.
              const trusted = trust ? await verifyStoredImageSignature(source.store, source.reference, trust, context.signal) : undefined;
              signers = trusted?.signers;
              report = await verifyImage(source.store, trusted?.root.digest ?? source.reference, context.signal);
            } else {
              const selection = selectionFrom(options);
              const trusted = trust ? await verifyStoredManifestSignature(source.store, source.reference, selection, trust, context.signal) : undefined;
              if (trusted) signers = [trusted.signer];
              report = await verifyDirectory(source.store, source.reference, directory, { ...selection, ...(await withRecordedNames(directory, check)) });
              if (trusted && report.digest !== trusted.digest) {
                throw new OcibootError("SIGNATURE", `Cannot verify ${sourceText}: it resolved to ${trusted.digest}, whose signature verified, then to ${report.digest}`);
              }
            }
          } finally {
            await source.close();
          }
        }
      }
      finish(context, report, options, global.quiet, what, signers);
    });
}

/** The digest a registry reference pins (`host/repo@sha256:…`), if any. */
function pinnedDigestOf(location: Location): Digest | undefined {
  return location.kind === "registry" ? parseReference(location.reference).digest : undefined;
}

/**
 * A pinned registry reference (`REF@sha256:…`) whose digest is the folder's own manifest.json: the pin
 * already proves the manifest, so the folder is checked without the registry (which may be down).
 */
async function pinnedSavedFetch(location: Location, directory: string, check: DirectoryCheckOptions): Promise<SavedFetch | undefined> {
  const pin = pinnedDigestOf(location);
  if (pin === undefined) return undefined;
  const saved = await savedFetchIn(directory);
  return saved && savedFetchMatches(saved, pin) && canVerifyOffline(saved, check) ? saved : undefined;
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

/** The names and roles fetch recorded in the folder, under those given on the command line. */
async function withRecordedNames(directory: string, check: DirectoryCheckOptions): Promise<DirectoryCheckOptions> {
  const saved = await savedFetchIn(directory);
  const record = saved?.record;
  if (!record) return check;
  const merged: DirectoryCheckOptions = { ...check, fileNames: { ...record.fileNames, ...check.fileNames } };
  const roles = check.roles ?? record.roles;
  if (roles) merged.roles = roles;
  return merged;
}

/** What fetch saved in the folder, or undefined for a folder without manifest.json. */
function savedFetchIn(directory: string): Promise<SavedFetch | undefined> {
  return readSavedFetch(directory).catch((error: unknown) => {
    if (isOcibootError(error, "NOT_FOUND")) return undefined;
    throw error;
  });
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
