import { basename } from "node:path";
import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { refNameOf } from "../../content/layout-index.ts";
import { importArchive } from "../../ops/import.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { createFetchProgress } from "../progress.ts";
import { openLocalStore } from "./store-output.ts";

/** `ociboot import ARCHIVE`: an OCI layout archive into the local store, streamed and verified. */
export function importCommand(context: CliContext) {
  return new Command("import")
    .description("import an OCI layout archive (.tar, .tar.gz, .tar.xz; e.g. Garden Linux <name>.oci.tar.xz) into the local store, streaming, every blob verified")
    .argument("<archive>", "archive file")
    .addOption(new Option("--xz-decoder <decoder>", "how to decode xz").choices(["auto", "system", "wasm"] as const).default("auto" as const))
    .option("--max-size <bytes>", "refuse archives that expand to more than this many bytes (default 64 GiB)")
    .option("--json", JSON_HELP)
    .addHelpText("after", examples(["ociboot --store-path ./imported import metal-onmetal.oci.tar.xz && ociboot --store-path ./imported list"]))
    .action(async (archive, options, command) => {
      const global = globalOptions(command as never, context);
      const store = openLocalStore(global, context);
      const maxBytes = options.maxSize === undefined ? undefined : Number(options.maxSize);
      if (maxBytes !== undefined && (!Number.isSafeInteger(maxBytes) || maxBytes <= 0)) {
        throw new OcibootError("USAGE", `Cannot import: --max-size ${options.maxSize} is not a positive number of bytes`);
      }
      const path = resolvePath(context, archive);
      const progress = createFetchProgress(context, { quiet: global.quiet, announce: false });
      const name = basename(path);
      let planned = false;
      const onRead = (done: number, total: number) => {
        if (!planned) progress?.planned([{ name, size: total }]);
        planned = true;
        progress?.advanced(name, done, total);
      };
      let result;
      try {
        result = await importArchive(store, path, {
          xz: options.xzDecoder,
          signal: context.signal,
          ...(maxBytes !== undefined ? { maxBytes } : {}),
          ...(progress !== undefined ? { onRead } : {}),
        });
      } finally {
        progress?.stop();
      }
      const lines = result.images.map((image) => {
        const hex = image.digest.slice(image.digest.indexOf(":") + 1);
        const name = refNameOf(image);
        return name === undefined ? `Successfully imported ${hex}\n` : `Successfully imported ${name} ${hex}\n`;
      });
      const images = result.images.map((image) => ({ reference: refNameOf(image) ?? null, digest: image.digest, mediaType: image.mediaType, size: image.size }));
      printResult(context, options, lines.join(""), { images }, global.quiet);
    });
}
