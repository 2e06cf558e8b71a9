import type { CopyImageResult } from "../../ops/copy-image.ts";
import { signerLabel } from "../keys.ts";

/** What copy prints about: the result and the locations as the user wrote them. */
export interface CopyReport extends CopyImageResult {
  source: string;
  destination: string;
}

/** The final report of copy: JSON for machines; for people, one line per referrer and `Copied SRC → DST <digest>`. */
export function formatCopyReport(report: CopyReport, options: { json: boolean }): string {
  if (options.json) {
    return `${JSON.stringify(
      {
        source: report.source,
        destination: report.destination,
        digest: report.descriptor.digest,
        mediaType: report.descriptor.mediaType,
        size: report.descriptor.size,
        copied: report.copied,
        sourceIndex: report.sourceIndex?.digest ?? null,
        signers: report.signers,
        referrers: report.referrers.map((referrer) => ({
          digest: referrer.digest,
          mediaType: referrer.mediaType,
          size: referrer.size,
          artifactType: referrer.artifactType ?? null,
        })),
      },
      null,
      2,
    )}\n`;
  }
  const referrerLines = report.referrers.map((referrer) => `Copied referrer ${referrer.digest}${referrer.artifactType ? ` (${referrer.artifactType})` : ""}\n`);
  const narrowed =
    report.sourceIndex === undefined ? "" : `Copied only the chosen platforms: a new index ${report.descriptor.digest} replaces ${report.sourceIndex.digest}\n`;
  const signerLines = (report.signers ?? []).map((signer) => `Signed by ${signerLabel(signer)}: ${signer.signedDigest}\n`);
  return `${signerLines.join("")}${referrerLines.join("")}${narrowed}Copied ${report.source} → ${report.destination} ${report.descriptor.digest}\n`;
}
