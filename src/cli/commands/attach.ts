import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { attachFiles, type AttachOptions, DEFAULT_FILE_MEDIA_TYPE } from "../../ops/referrers.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { createdTimestamp } from "../created.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { openWritableSource } from "../sources.ts";
import { formatAttachResult } from "./referrers-output.ts";

/** `ociboot attach REF FILE… --artifact-type TYPE`: files as an OCI 1.1 artifact referring to REF, as `oras attach`. */
export function attachCommand(context: CliContext) {
  return new Command("attach")
    .description("attach files to an image as an OCI 1.1 artifact whose subject is the image (as oras attach)")
    .argument("<ref>", "registry reference or oci:DIR[:REF] (a manifest or index)")
    .argument("[files...]", "files to attach, one layer each, titled by base name")
    .requiredOption("--artifact-type <type>", "artifactType of the artifact, e.g. build/log")
    .option("--layer-media-type <type>", "media type of the files' layers", DEFAULT_FILE_MEDIA_TYPE)
    .option("-a, --annotation <key=value>", "manifest annotation (repeatable)", collect, [] as string[])
    .addOption(new Option("--no-created", "leave out org.opencontainers.image.created (else now, or $SOURCE_DATE_EPOCH)"))
    .option("--json", "print the artifact as JSON")
    .addHelpText(
      "after",
      examples([
        "ociboot attach 127.0.0.1:5000/os/metal:today metal.os-release --artifact-type build/os-release",
        "ociboot attach oci:./onmetal:127.0.0.1:5000/os/single:1 metal.log --artifact-type build/log -a com.example.build=42",
      ]),
    )
    .action(async (ref, files, options, command) => {
      const global = globalOptions(command as never, context);
      const annotations = parseAnnotations(options.annotation);
      if (files.length === 0 && Object.keys(annotations).length === 0) {
        throw new OcibootError("USAGE", "Cannot attach: give at least one file or --annotation");
      }
      const attachOptions: AttachOptions = { artifactType: options.artifactType, fileMediaType: options.layerMediaType, annotations, signal: context.signal };
      if (options.created) attachOptions.created = createdTimestamp(context);
      const source = await openWritableSource(ref, global, context, "attach to");
      try {
        const result = await attachFiles(source.store, source.reference, files.map((file) => resolvePath(context, file)), attachOptions);
        if (options.json === true || !global.quiet) context.stdout.write(formatAttachResult(result, ref, { json: options.json === true }));
      } finally {
        await source.close();
      }
    });
}

function parseAnnotations(pairs: readonly string[]): Record<string, string> {
  const annotations: Record<string, string> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    if (equals <= 0) throw new OcibootError("USAGE", `Cannot read --annotation ${pair}: expected key=value`);
    annotations[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return annotations;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
