import { Command } from "@commander-js/extra-typings";
import { parsePlatform } from "../../oci/platform.ts";
import { packBuild, type PackOptions, type PackResult } from "../../ops/pack.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { compressionLevelOption } from "../compression-option.ts";
import { sourceDateEpochTimestamp } from "../created.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath, temporaryBase } from "../paths.ts";
import { defaultPlatform } from "../sources.ts";
import { loadSigningKeyFile } from "../keys.ts";
import { transferLog } from "./transfer-log.ts";

/** `ociboot pack`: the Garden Linux `_oci` feature, from a build folder to `<name>.oci.tar.xz`. */
export function packCommand(context: CliContext) {
  return new Command("pack")
    .description(
      "pack a Garden Linux build folder into an OCI archive with an onmetal/ store: the onmetal boot image, " +
        "an info container image (os-release, build log, package manifest) and the three build files attached as referrers",
    )
    .requiredOption("--from-build <dir>", "build folder holding <NAME>.vmlinuz, .initrd, .rootfs|.squashfs|.raw|.tar|.tar.gz|.tar.xz, .os-release, .manifest, .log (and .cmdline)")
    .requiredOption("--name <name>", "the build's file name prefix, e.g. metal-gardener_prod-amd64-1592.1")
    .requiredOption("-o, --output <file>", "archive to write: .tar.xz (needs xz), .tar.gz, .tar.zst (needs zstd) or .tar")
    .option("--tag <ref>", "also tag the boot image (it is always listed untagged, as onmetal-image builds it)")
    .option("--info-tag <ref>", "tag of the info image (default: the --tag tag with -info appended, else localhost/build-info:<NAME>)")
    .option("--command-line <text>", "kernel command line when the folder has no <NAME>.cmdline")
    .option("--rootfs-file <file>", "the rootfs, instead of the first found of <NAME>.rootfs, .squashfs, .raw, .tar, .tar.gz, .tar.xz")
    .option("--platform <os/arch[/variant]>", "os and architecture of the info image (default: this machine's, linux)")
    .option("--sign-key <file>", "sign the boot image with this private key (cosign's sha256-<hex>.sig, in the archive); as ociboot sign --key")
    .addOption(compressionLevelOption())
    .option("--json", "print what was packed as JSON (archive, boot image, info image, referrers)")
    .addHelpText(
      "after",
      "\n$SOURCE_DATE_EPOCH dates the info image and the attached files; without it neither is dated and the same build gives the same archive.\n\n" +
        examples([
          "ociboot pack --from-build .build --name metal-gardener_prod-amd64-1592.1 -o metal-gardener_prod-amd64-1592.1.oci.tar.xz",
          "ociboot --store-path ./gl import metal-gardener_prod-amd64-1592.1.oci.tar.xz && ociboot --store-path ./gl list",
        ]).slice(1),
    )
    .action(async (options, command) => {
      const output = resolvePath(context, options.output);
      const packOptions: PackOptions = {
        name: options.name,
        output,
        temporaryDirectory: temporaryBase(context),
        platform: options.platform === undefined ? defaultPlatform() : parsePlatform(options.platform),
        signal: context.signal,
      };
      if (options.compressionLevel !== undefined) packOptions.compressionLevel = options.compressionLevel;
      if (options.tag !== undefined) packOptions.tag = options.tag;
      if (options.infoTag !== undefined) packOptions.infoTag = options.infoTag;
      if (options.commandLine !== undefined) packOptions.commandLine = options.commandLine;
      if (options.rootfsFile !== undefined) packOptions.rootfsFile = resolvePath(context, options.rootfsFile);
      const created = sourceDateEpochTimestamp(context);
      if (created !== undefined) packOptions.created = created;
      if (options.signKey !== undefined) packOptions.signingKey = await loadSigningKeyFile(options.signKey, context, globalOptions(command as never, context));
      const log = transferLog(context, "packed", globalOptions(command as never, context).quiet || options.json === true);
      packOptions.transfer = log.hooks;
      let result;
      try {
        result = await packBuild(resolvePath(context, options.fromBuild), packOptions);
      } finally {
        log.stop();
      }
      if (options.json === true) context.stdout.write(packJson(output, result));
      else if (!globalOptions(command as never, context).quiet) context.stdout.write(packText(output, result));
    });
}

function packText(output: string, result: PackResult): string {
  const hex = (digest: string) => digest.slice(digest.indexOf(":") + 1);
  const boot = result.bootReference === undefined ? hex(result.bootImage.digest) : `${result.bootReference} ${hex(result.bootImage.digest)}`;
  return (
    `Successfully packed ${output}\n` +
    `  boot image  ${boot}\n` +
    `  info image  ${result.infoReference} ${hex(result.infoImage.digest)}\n` +
    result.referrers.map((referrer) => `  referrer    ${referrer.artifactType ?? referrer.mediaType} ${hex(referrer.digest)}\n`).join("") +
    (result.signature ? `  signature   ${result.signature.tag} by ${result.signature.fingerprint}\n` : "")
  );
}

function packJson(output: string, result: PackResult): string {
  const report = {
    archive: output,
    bootImage: { reference: result.bootReference ?? null, ...result.bootImage },
    infoImage: { reference: result.infoReference, ...result.infoImage },
    referrers: result.referrers,
    ...(result.signature ? { signature: result.signature } : {}),
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}
