import { qemuCommandFor } from "../../ops/boot-hint.ts";
import { signerLabel } from "../keys.ts";
import type { FetchReport } from "../../ops/fetch.ts";
import type { ReferrerFilesReport } from "../../ops/referrer-files.ts";
import { formatBytes } from "../format.ts";

/** The final report of fetch: JSON for machines, a short summary and a boot hint for people. */
export function formatFetchReport(report: FetchReport, options: { json: boolean; quiet: boolean }): string {
  if (options.json) {
    return `${JSON.stringify(
      {
        source: report.source,
        reference: report.reference,
        digest: report.digest,
        mediaType: report.mediaType,
        indexDigest: report.indexDigest,
        platform: report.platform,
        dialect: report.dialect,
        commandLine: report.commandLine,
        outputDir: report.outputDir,
        transferred: report.transferred,
        signer: report.signer,
        files: report.files.map((file) => ({
          role: file.role,
          name: file.name,
          path: file.path,
          mediaType: file.mediaType,
          digest: file.digest,
          size: file.size,
          status: file.status,
        })),
      },
      null,
      2,
    )}\n`;
  }
  if (options.quiet) return "";
  const lines = [`Fetched ${report.reference} ${report.digest} into ${report.outputDir}`];
  if (report.signer) lines.push(`Signed by ${signerLabel(report.signer)}: ${report.signer.signature}`);
  for (const file of report.files) {
    lines.push(`  ${(file.role ?? "file").padEnd(8)} ${file.name.padEnd(16)} ${formatBytes(file.size).padStart(10)}  ${file.digest}`);
  }
  const kernel = report.files.find((file) => file.role === "kernel");
  if (kernel) {
    const initrd = report.files.find((file) => file.role === "initrd");
    const cmdline = report.files.find((file) => file.role === "cmdline");
    const qemu = qemuCommandFor(report.architecture, { kernel: kernel.path, initrd: initrd?.path, cmdline: cmdline?.path });
    if (qemu !== undefined) lines.push("Boot it in a VM with:", `  ${qemu}`);
    lines.push(`or in place of the running kernel (kexec) with: sh ${report.outputDir}/boot.sh`);
  }
  return `${lines.join("\n")}\n`;
}

/**
 * The report of `fetch --referrer`. Text: one line per file, `PATH<TAB>DIGEST<TAB>SIZE`, for
 * `cut -f` and `awk -F'\t'` (docs/commands.md, "Output").
 */
export function formatReferrerFilesReport(report: ReferrerFilesReport, options: { json: boolean; quiet: boolean }): string {
  if (options.json) {
    const referrers = report.referrers.map((referrer) => ({
      digest: referrer.descriptor.digest,
      artifactType: report.artifactType,
      ...(referrer.created !== undefined ? { created: referrer.created } : {}),
      directory: referrer.directory,
      files: referrer.files.map((file) => ({ name: file.name, path: file.path, mediaType: file.mediaType, digest: file.digest, size: file.size, status: file.status })),
    }));
    return `${JSON.stringify({ subject: report.subject, artifactType: report.artifactType, referrers }, null, 2)}\n`;
  }
  if (options.quiet) return "";
  return report.referrers.flatMap((referrer) => referrer.files.map((file) => `${file.path}\t${file.digest}\t${file.size}\n`)).join("");
}
