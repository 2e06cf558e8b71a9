import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { type BootFiles, type BuildFormat, buildImage, buildMultiArchImage } from "../../ops/build.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { openLocalStore } from "./store-output.ts";

const FILE_KINDS = ["rootfs", "initramfs", "kernel", "squashfs", "uki", "iso"] as const;

/** `ociboot build`: a boot image from files into the local store, byte-identical to onmetal-image's for the onmetal format. */
export function buildCommand(context: CliContext) {
  return new Command("build")
    .description("build a boot image into the local store (files are streamed, never held in memory)")
    .option("--rootfs-file <file>", "root file system")
    .option("--initramfs-file <file>", "initramfs / initrd")
    .option("--kernel-file <file>", "kernel (vmlinuz)")
    .option("--squashfs-file <file>", "squashfs root file system (ironcore format)")
    .option("--uki-file <file>", "unified kernel image (ironcore format)")
    .option("--iso-file <file>", "bootable ISO (ironcore format)")
    .option("--command-line <text>", "kernel command line, stored in the config")
    .option("--tag <ref>", "also tag the image as this full reference")
    .addOption(new Option("--format <format>", "manifest dialect").choices(["onmetal", "ironcore"] as const).default("onmetal" as const))
    .option("--config <spec>", "ironcore multi-arch: arch=amd64,kernel=F,initramfs=F,rootfs=F,… (repeatable; builds an index)", collect, [] as string[])
    .option("--json", JSON_HELP)
    .addHelpText(
      "after",
      examples([
        "ociboot --store-path ./onmetal build --rootfs-file rootfs.tar --initramfs-file initrd --kernel-file vmlinuz --command-line 'console=ttyS0' --tag 127.0.0.1:5000/os/single:1",
        "ociboot build --format ironcore --config arch=amd64,kernel=vmlinuz-amd64,initramfs=initrd-amd64 --config arch=arm64,kernel=vmlinuz-arm64,initramfs=initrd-arm64 --tag ghcr.io/me/boot:1",
      ]),
    )
    .action(async (options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const format: BuildFormat = options.format;
      const common = {
        format,
        signal: context.signal,
        ...(options.commandLine !== undefined ? { commandLine: options.commandLine } : {}),
        ...(options.tag !== undefined ? { tag: options.tag } : {}),
      };
      let result;
      if (options.config.length > 0) {
        if (FILE_KINDS.some((kind) => options[`${kind}File`] !== undefined)) {
          throw new OcibootError("USAGE", "Cannot build: use either --config per architecture or the --*-file options, not both");
        }
        result = await buildMultiArchImage(store, options.config.map((spec) => parseArchitectureSpec(spec, context)), common);
      } else {
        const files: BootFiles = {};
        for (const kind of FILE_KINDS) {
          const path = options[`${kind}File`];
          if (path !== undefined) files[kind] = resolvePath(context, path);
        }
        result = await buildImage(store, files, common);
      }
      const hex = result.descriptor.digest.slice(result.descriptor.digest.indexOf(":") + 1);
      const text = result.reference === undefined ? `Successfully built ${hex}\n` : `Successfully built ${result.reference} ${hex}\n`;
      printResult(context, options, text, { reference: result.reference ?? null, digest: result.descriptor.digest, mediaType: result.descriptor.mediaType, size: result.descriptor.size }, global.quiet);
    });
}

function parseArchitectureSpec(spec: string, context: CliContext): { architecture: string; files: BootFiles } {
  let architecture: string | undefined;
  const files: BootFiles = {};
  for (const part of spec.split(",")) {
    const equals = part.indexOf("=");
    const key = part.slice(0, equals);
    const value = part.slice(equals + 1);
    if (equals <= 0 || value.length === 0) throw new OcibootError("USAGE", `Cannot read --config ${spec}: "${part}" is not key=value`);
    if (key === "arch") architecture = value;
    else if ((FILE_KINDS as readonly string[]).includes(key)) files[key as (typeof FILE_KINDS)[number]] = resolvePath(context, value);
    else throw new OcibootError("USAGE", `Cannot read --config ${spec}: unknown key "${key}"`);
  }
  if (architecture === undefined) throw new OcibootError("USAGE", `Cannot read --config ${spec}: arch= is missing`);
  return { architecture, files };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
