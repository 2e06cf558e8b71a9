import type { FetchReport } from "../../ops/fetch.ts";
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
  if (report.signer) lines.push(`Signed by ${report.signer.fingerprint} (${report.signer.key}): ${report.signer.signature}`);
  for (const file of report.files) {
    lines.push(`  ${(file.role ?? "file").padEnd(8)} ${file.name.padEnd(16)} ${formatBytes(file.size).padStart(10)}  ${file.digest}`);
  }
  const kernel = report.files.find((file) => file.role === "kernel");
  if (kernel) {
    const initrd = report.files.find((file) => file.role === "initrd");
    const cmdline = report.files.find((file) => file.role === "cmdline");
    lines.push("Boot it in a VM with:");
    lines.push(
      `  qemu-system-x86_64 -m 1024 -nographic -kernel ${kernel.path}${initrd ? ` -initrd ${initrd.path}` : ""}${cmdline ? ` -append "$(cat ${cmdline.path})"` : ""}`,
    );
    lines.push(`or in place of the running kernel (kexec) with: sh ${report.outputDir}/boot.sh`);
  }
  return `${lines.join("\n")}\n`;
}
