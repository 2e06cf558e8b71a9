import { Option } from "@commander-js/extra-typings";
import { OcibootError } from "../errors.ts";

/** `--compression-level N` for commands that write an archive; the range is checked against the archive's compression. */
export function compressionLevelOption() {
  return new Option(
    "--compression-level <n>",
    "compression level of a .tar.xz (0-9, default 6), .tar.gz (1-9, default 6) or .tar.zst (1-19, default 3) archive",
  ).argParser(parseCompressionLevel);
}

function parseCompressionLevel(text: string): number {
  if (!/^\d{1,2}$/.test(text)) throw new OcibootError("USAGE", `Cannot use --compression-level ${text.slice(0, 40)}: expected a whole number such as 6`);
  return Number(text);
}
