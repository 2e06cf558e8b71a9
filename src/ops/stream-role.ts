import type { ReadableStore } from "../content/store.ts";
import { ingest } from "../content/ingest.ts";
import { ContentVerifier } from "../content/verify.ts";
import { OcibootError } from "../errors.ts";
import { parseBootConfig, planBootFiles, type Role } from "../oci/dialects.ts";
import { isDigest } from "../oci/digest.ts";
import { commandLineFileBytes } from "./fetch.ts";
import { signatureLookup, type TrustOptions, verifyResolvedSignature } from "./signature.ts";
import { readConfigBytes, resolveManifest, type ManifestSelection } from "./resolve.ts";
import { fetchContinuing } from "./resuming-source.ts";

/**
 * Writes one role of a boot image to a sink (standard output), verified while streaming through
 * the one ingest path (content/ingest.ts). A sink cannot take bytes back: on a mismatch the stream
 * is aborted and the error tells the caller that what was written must be discarded.
 */
export async function streamRole(
  store: ReadableStore,
  reference: string,
  role: Role,
  sink: WritableStream<Uint8Array>,
  options: ManifestSelection & { signal?: AbortSignal; trust?: TrustOptions } = {},
): Promise<void> {
  const resolved = await resolveManifest(store, reference, options, options.signal);
  // Nothing reaches the sink before the signature verified: standard output cannot take bytes back.
  if (options.trust) {
    const selection = { ...(options.platform ? { platform: options.platform } : {}), ...(options.flavor !== undefined ? { flavor: options.flavor } : {}), ...(isDigest(reference) ? {} : { tag: reference }) };
    await verifyResolvedSignature(store, resolved, options.trust, selection, signatureLookup(options.trust, options.signal));
  }
  const plan = planBootFiles(resolved.manifest);
  const file = plan.files.find((candidate) => candidate.role === role);
  if (!file && role === "cmdline" && plan.commandLineFrom === "config") {
    const { commandLine } = parseBootConfig(await readConfigBytes(store, resolved.manifest.config, options.signal));
    if (commandLine !== undefined) {
      const writer = sink.getWriter();
      await writer.write(commandLineFileBytes(commandLine));
      await writer.close();
      return;
    }
  }
  if (!file) {
    throw new OcibootError("NOT_FOUND", `Cannot fetch ${role} from ${reference}: the image has no such layer`);
  }
  // A pipe cannot take bytes back, but it can take the rest: a cut transfer continues from the byte reached.
  const content = await fetchContinuing(store, file.descriptor, options.signal ? { signal: options.signal } : {});
  const writer = sink.getWriter();
  await ingest(
    content.stream,
    new ContentVerifier(file.descriptor),
    {
      write: (chunk) => writer.write(chunk),
      commit: () => writer.close(),
      abort: (error) => writer.abort(error).catch(() => undefined),
    },
    { where: "standard output", ...(options.signal ? { signal: options.signal } : {}) },
  );
}
