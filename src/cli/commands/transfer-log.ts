import type { Descriptor } from "../../oci/descriptor.ts";
import type { TransferHooks } from "../../ops/copy-graph.ts";
import type { CliContext } from "../context.ts";
import { formatBytes } from "../format.ts";
import { createFetchProgress } from "../progress.ts";

/** What push, pull, copy and pack report while blobs move, and how to end the display. */
export interface TransferLog {
  hooks: TransferHooks;
  /** Ends the progress display (bars restore the cursor); safe to call on every way out, twice too. */
  stop(): void;
}

/**
 * Progress for push, pull, copy and pack, as fetch shows it: bars on a terminal; in logs, a line
 * for what is about to move, one per blob once it arrived verified, and a `progress:` line every
 * few seconds while bytes flow. Nothing with --quiet.
 */
export function transferLog(context: CliContext, verb: "pushed" | "pulled" | "copied" | "packed", quiet: boolean): TransferLog {
  if (quiet) return { hooks: {}, stop: () => undefined };
  const short = (descriptor: Descriptor) => descriptor.digest.slice(0, descriptor.digest.indexOf(":") + 13);
  const terminal = context.stderr.isTTY === true;
  const progress = createFetchProgress(context, { quiet: false, announce: false });
  const planned = new Set<string>();
  const hooks: TransferHooks = {
    onPlanned: (blobs) => {
      const fresh = blobs.filter((blob) => !planned.has(blob.digest));
      if (fresh.length === 0) return;
      for (const blob of fresh) planned.add(blob.digest);
      progress?.planned(fresh.map((blob) => ({ name: short(blob), size: blob.size })));
      if (terminal) return;
      const bytes = fresh.reduce((sum, blob) => sum + blob.size, 0);
      context.stderr.write(`${fresh.length} blob${fresh.length === 1 ? "" : "s"} to transfer, ${formatBytes(bytes)}\n`);
    },
    onBytes: (blob, done) => {
      if (planned.has(blob.digest)) progress?.advanced(short(blob), done, blob.size);
    },
    // On a terminal the bars show it; a line would be drawn over.
    onCopied: (descriptor) => {
      if (!terminal) context.stderr.write(`${short(descriptor)} ${formatBytes(descriptor.size)} ${verb}\n`);
    },
  };
  return { hooks, stop: () => progress?.stop() };
}
