import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import type { Role } from "../../oci/dialects.ts";
import { fetchBootImage, type FetchBootImageOptions } from "../../ops/fetch.ts";
import { streamRole } from "../../ops/stream-role.ts";
import type { CliContext } from "../context.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { createFetchProgress } from "../progress.ts";
import { openSource } from "../sources.ts";
import { flavorOption, nameOption, parseNames, parseRoles, platformOption, roleOption, selectionFrom } from "../boot-file-options.ts";
import { formatFetchReport } from "./fetch-output.ts";
import { keyOption, loadKeys, trustFor } from "../keys.ts";

/** `ociboot fetch REF -o DIR`: verified boot-ready files in a folder. */
export function fetchCommand(context: CliContext) {
  return new Command("fetch")
    .description("fetch a boot image: every blob verified while streaming, files named by role (vmlinuz, initrd, rootfs, cmdline)")
    .argument("<ref>", "registry reference (host/repo:tag, …@sha256:…), oci:DIR[:REF] or oci-archive:FILE[:REF]")
    .requiredOption("-o, --output <dir>", 'output directory, or "-" to write one --role to stdout')
    .addOption(platformOption())
    .addOption(flavorOption())
    .addOption(roleOption())
    .addOption(nameOption())
    .addOption(new Option("--concurrency <n>", "blobs downloaded at once").default("3"))
    .addOption(keyOption())
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      "\nExamples:\n  ociboot fetch ghcr.io/gardenlinux/gardenlinux:1592.1 --platform linux/amd64 --flavor metal-amd64 -o ./boot\n  ociboot fetch 127.0.0.1:5000/boot@sha256:<hex> -o ./boot --role kernel,initrd,cmdline\n  ociboot fetch oci-archive:gardenlinux.oci.tar.xz -o ./boot\n  ociboot fetch 127.0.0.1:5000/boot:latest --role kernel -o - > vmlinuz",
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const roles = options.role ? parseRoles(options.role) : undefined;
      const keys = await loadKeys(options.key, context);
      const source = await openSource(ref, global, context);
      try {
        const selection = selectionFrom(options);
        if (options.output === "-") {
          if (!roles || roles.length !== 1) {
            throw new OcibootError("USAGE", "Cannot write to stdout: name exactly one --role (e.g. --role kernel)");
          }
          await streamRole(source.store, source.reference, roles[0] as Role, context.stdoutStream, {
            ...selection,
            signal: context.signal,
            ...(keys ? { trust: trustFor(keys, ref) } : {}),
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
          ...(keys ? { trust: trustFor(keys, ref) } : {}),
        };
        const report = await fetchBootImage(source.store, source.reference, resolvePath(context, options.output), fetchOptions);
        context.stdout.write(formatFetchReport({ ...report, reference: ref }, { json: options.json === true, quiet: global.quiet }));
      } finally {
        await source.close();
      }
    });
}

function parseConcurrency(text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1 || value > 32) {
    throw new OcibootError("USAGE", `Cannot use --concurrency ${text}: expected a whole number from 1 to 32`);
  }
  return value;
}
