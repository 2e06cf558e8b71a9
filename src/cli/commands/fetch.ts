import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import type { Role } from "../../oci/dialects.ts";
import { fetchBootImage, type FetchBootImageOptions } from "../../ops/fetch.ts";
import { fetchReferrerFiles } from "../../ops/referrer-files.ts";
import { streamRole } from "../../ops/stream-role.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { createFetchProgress } from "../progress.ts";
import { openSource } from "../sources.ts";
import { spoolInto } from "../../content/archive-placement.ts";
import type { ReadableStore } from "../../content/store.ts";
import { verifyStoredManifestSignature } from "../../ops/signature.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { formatFetchReport, formatReferrerFilesReport } from "./fetch-output.ts";
import { loadTrust, trustFor, withTrustOptions } from "../keys.ts";

/** `ociboot fetch REF -o DIR`: verified boot-ready files in a folder. */
export function fetchCommand(context: CliContext) {
  return withTrustOptions(new Command("fetch")
    .description("fetch a boot image: every blob verified while streaming, files named by role (vmlinuz, initrd, rootfs, cmdline)")
    .argument("<ref>", "registry reference (host/repo:tag, …@sha256:…), oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .requiredOption("-o, --output <dir>", 'output directory, or "-" to write one --role to stdout (not a terminal; check the exit status, see below)')
    .addOption(platformOption())
    .addOption(flavorOption())
    .addOption(roleOption())
    .addOption(nameOption())
    .addOption(new Option("--concurrency <n>", "blobs downloaded at once").default("3"))
    .option("--referrer <artifact-type>", "instead of the image: the files of its newest referrer of this artifact type, by their titles (as oras pull)")
    .option("--all", "with --referrer: every referrer of the type, each into DIR/sha256-<hex>/"))
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      examples([
        "ociboot fetch 127.0.0.1:5000/os/metal:today -o ./boot",
        "ociboot fetch 127.0.0.1:5000/os/metal:today --platform linux/arm64 --role kernel,initrd,cmdline -o ./boot-arm64",
        "ociboot fetch 127.0.0.1:5000/os/metal:today --role kernel -o - > vmlinuz.fetched",
        "ociboot fetch oci-archive:metal.oci.tar.gz -o ./boot-offline",
        "ociboot fetch 127.0.0.1:5000/os/metal:today --referrer build/log -o ./logs          # the newest build log attached",
      ]) +
        "\nWith -o - the bytes stream out before their digest is checked, which happens only at the end:" +
        "\nexit status 0 alone says they are the published ones (a mismatch exits 5, after the bytes went out)." +
        "\nCheck it before using them (set -o pipefail in a pipeline). -o DIR never leaves an unverified file.",
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const roles = options.role ? parseRoles(options.role) : undefined;
      if (options.referrer !== undefined) return fetchReferrer(ref, options.referrer, options, command, context);
      if (options.all) throw new OcibootError("USAGE", "Cannot use --all without --referrer");
      if (options.output === "-" && context.stdout.isTTY === true) {
        throw new OcibootError("USAGE", "Cannot write a binary file to a terminal: redirect standard output (-o - > vmlinuz) or use -o DIR");
      }
      const trustAnchors = await loadTrust(options, context);
      const selection = selectionFrom(options);
      const outputDir = options.output === "-" ? undefined : resolvePath(context, options.output);
      // From a compressed archive, large blobs are spooled into the output folder itself (docs/archives.md).
      const archiveBlobs = outputDir === undefined ? {} : { archiveBlobs: spoolInto(outputDir) };
      const source = await openSource(ref, global, context, {
        ...archiveBlobs,
        // With --key nothing may appear in the folder before the signature verified.
        ...(trustAnchors && outputDir !== undefined ? { beforePlacing: (store: ReadableStore, reference: string) => verifyStoredManifestSignature(store, reference, selection, trustFor(trustAnchors, ref), context.signal) } : {}),
      });
      try {
        if (options.output === "-") {
          if (!roles || roles.length !== 1) {
            throw new OcibootError("USAGE", "Cannot write to stdout: name exactly one --role (e.g. --role kernel)");
          }
          await streamRole(source.store, source.reference, roles[0] as Role, context.stdoutStream, {
            ...selection,
            signal: context.signal,
            ...(trustAnchors ? { trust: trustFor(trustAnchors, ref) } : {}),
          });
          return;
        }
        const progress = createFetchProgress(context, { quiet: global.quiet || options.json === true });
        const fetchOptions: FetchBootImageOptions = {
          ...selection,
          fileNames: parseNames(options.name),
          concurrency: parseConcurrency(options.concurrency),
          signal: context.signal,
          ...(roles ? { roles } : {}),
          ...(progress ? { progress } : {}),
          ...(trustAnchors ? { trust: trustFor(trustAnchors, ref) } : {}),
        };
        let report;
        try {
          report = await fetchBootImage(source.store, source.reference, resolvePath(context, options.output), fetchOptions);
        } finally {
          progress?.stop();
        }
        context.stdout.write(formatFetchReport({ ...report, reference: ref }, { json: options.json === true, quiet: global.quiet }));
      } finally {
        await source.close();
      }
    });
}

async function fetchReferrer(
  ref: string,
  artifactType: string,
  options: { output: string; role?: string; name: string[]; platform?: string; flavor?: string; all?: boolean; json?: boolean },
  command: unknown,
  context: CliContext,
): Promise<void> {
  if (options.output === "-") throw new OcibootError("USAGE", "Cannot write referrer files to stdout: give a directory with -o DIR");
  if (options.role !== undefined || options.name.length > 0) throw new OcibootError("USAGE", "Cannot use --role or --name with --referrer: the files are named by their titles");
  if (options.platform !== undefined || options.flavor !== undefined) {
    // The referrers of one platform's manifest are those of its digest: `ociboot digest REF --platform P` names it.
    throw new OcibootError("USAGE", "Cannot use --platform or --flavor with --referrer: give the manifest's own reference, REPO@$(ociboot digest REF --platform P)");
  }
  const global = globalOptions(command as never, context);
  const source = await openSource(ref, global, context);
  try {
    const directory = resolvePath(context, options.output);
    const report = await fetchReferrerFiles(source.store, source.reference, artifactType, directory, { all: options.all === true, signal: context.signal });
    context.stdout.write(formatReferrerFilesReport(report, { json: options.json === true, quiet: global.quiet }));
  } finally {
    await source.close();
  }
}

function parseConcurrency(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 32) {
    throw new OcibootError("USAGE", `Cannot use --concurrency ${text}: expected a whole number from 1 to 32`);
  }
  return value;
}
