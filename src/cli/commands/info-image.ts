import { Command } from "@commander-js/extra-typings";
import { parsePlatform } from "../../oci/platform.ts";
import { buildInfoImage, type InfoImageOptions } from "../../ops/info-image.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { sourceDateEpochTimestamp } from "../created.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { defaultPlatform } from "../sources.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot info-image`: a small container image holding a build's os-release, build log and package list. */
export function infoImageCommand(context: CliContext) {
  return new Command("info-image")
    .description(
      "build a small container image (one gzip tar layer) holding the os-release, build log and package manifest into the local store; " +
        "docker and podman can pull it after `ociboot push REF`",
    )
    .requiredOption("--os-release <file>", "os-release of the build, stored as /etc/os-release")
    .requiredOption("--build-log <file>", "build log, stored as /usr/share/gardenlinux/build.log")
    .requiredOption("--package-manifest <file>", "package list, stored as /usr/share/gardenlinux/packages.manifest")
    .requiredOption("--tag <ref>", "full reference to tag the image with")
    .option("--platform <os/arch[/variant]>", "os and architecture of the image (default: this machine's, linux)")
    .option("--json", JSON_HELP)
    .addHelpText(
      "after",
      "\nThe same files give the same digest; $SOURCE_DATE_EPOCH sets the config's created time and the files' mtime.\n\n" +
        examples([
          "ociboot info-image --os-release metal.os-release --build-log metal.log --package-manifest metal.manifest --tag ghcr.io/me/gardenlinux:1592.1-info",
          "ociboot push ghcr.io/me/gardenlinux:1592.1-info                   # then: podman pull ghcr.io/me/gardenlinux:1592.1-info",
        ]).slice(1),
    )
    .action(async (options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const infoOptions: InfoImageOptions = {
        tag: options.tag,
        platform: options.platform === undefined ? defaultPlatform() : parsePlatform(options.platform),
        signal: context.signal,
      };
      const created = sourceDateEpochTimestamp(context);
      if (created !== undefined) infoOptions.created = created;
      const result = await buildInfoImage(
        store,
        {
          osRelease: resolvePath(context, options.osRelease),
          buildLog: resolvePath(context, options.buildLog),
          packageManifest: resolvePath(context, options.packageManifest),
        },
        infoOptions,
      );
      const hex = result.descriptor.digest.slice(result.descriptor.digest.indexOf(":") + 1);
      const { descriptor } = result;
      printResult(context, options, `Successfully built ${result.reference} ${hex}\n`, { reference: result.reference, digest: descriptor.digest, mediaType: descriptor.mediaType, size: descriptor.size }, global.quiet);
    });
}
