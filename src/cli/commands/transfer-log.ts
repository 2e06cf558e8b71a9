import type { Descriptor } from "../../oci/descriptor.ts";
import type { CopyGraphOptions } from "../../ops/copy-graph.ts";
import type { CliContext } from "../context.ts";
import { formatBytes } from "../format.ts";

/** stderr lines for push, pull and copy: what is about to move and each blob once it arrived verified; nothing with --quiet. */
export function transferLog(context: CliContext, verb: "pushed" | "pulled" | "copied", quiet: boolean): Pick<CopyGraphOptions, "onPlanned" | "onCopied"> {
  if (quiet) return {};
  const short = (descriptor: Descriptor) => descriptor.digest.slice(0, descriptor.digest.indexOf(":") + 13);
  return {
    onPlanned: (blobs) => {
      if (blobs.length === 0) return;
      const bytes = blobs.reduce((sum, blob) => sum + blob.size, 0);
      context.stderr.write(`${blobs.length} blob${blobs.length === 1 ? "" : "s"} to transfer, ${formatBytes(bytes)}\n`);
    },
    onCopied: (descriptor) => context.stderr.write(`${short(descriptor)} ${formatBytes(descriptor.size)} ${verb}\n`),
  };
}
