import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { errorMessage } from "../content/fs-util.ts";
import type { ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import { titleOf } from "../oci/artifact.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { safeFileName } from "../oci/dialects.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Annotation } from "../oci/mediatypes.ts";
import { type DownloadStatus, downloadBlob } from "./download.ts";
import { discoverReferrers } from "./referrers.ts";
import { readManifestBytes } from "./graph-walk.ts";

/** Options for {@link fetchReferrerFiles}. */
export interface ReferrerFilesOptions {
  /** Every referrer of the type, each into a folder of its own, instead of the newest alone. */
  all?: boolean;
  signal?: AbortSignal;
}

/** One file written from a referrer's layer. */
export interface ReferrerFile {
  /** The layer's title: the file's name. */
  name: string;
  path: string;
  mediaType: string;
  digest: string;
  size: number;
  status: DownloadStatus;
}

/** What {@link fetchReferrerFiles} wrote. */
export interface ReferrerFilesReport {
  subject: Descriptor;
  artifactType: string;
  referrers: Array<{ descriptor: Descriptor; created?: string; directory: string; files: ReferrerFile[] }>;
}

interface Candidate {
  descriptor: Descriptor;
  layers: Descriptor[];
  created: string | undefined;
  time: number;
  position: number;
}

/**
 * Writes the files of the newest referrer of `artifactType` of the image `reference` names (or of
 * every such referrer with `all`) into `directory`, each file under its layer's title, as
 * `oras pull` does after `oras discover`. Newest means the latest `org.opencontainers.image.created`
 * of the verified referrer manifest; without one, the referrer listed last counts as the newest.
 *
 * Titles are untrusted: every title of every chosen referrer must be a plain file name (no path,
 * no `..`, no control character) and unique within its referrer before anything is written.
 * Layers without a title are skipped, as oras does. Each file is verified while it streams into
 * `<name>.partial` and renamed only when complete (see {@link downloadBlob}). With `all`, each
 * referrer's files go to `directory/<algorithm>-<hex>/` so that equal titles cannot collide.
 *
 * @throws OcibootError NOT_FOUND when no referrer of the type, or no titled file, exists;
 *   UNSAFE_CONTENT for a title that is not a plain file name.
 */
export async function fetchReferrerFiles(
  store: ReadableStore,
  reference: string,
  artifactType: string,
  directory: string,
  options: ReferrerFilesOptions = {},
): Promise<ReferrerFilesReport> {
  const { signal } = options;
  const listing = await discoverReferrers(store, reference, { artifactType, ...(signal ? { signal } : {}) });
  const candidates: Candidate[] = [];
  for (const [position, referrer] of listing.referrers.entries()) {
    // discover lists referrers whose manifest is gone (a stale fallback tag); they hold nothing to fetch.
    if (referrer.layers === undefined) continue;
    const parsed = parseManifest(await readManifestBytes(store, referrer.descriptor, signal), referrer.descriptor.mediaType);
    if (parsed.kind !== "manifest") continue;
    const created = parsed.manifest.annotations?.[Annotation.created];
    const time = created === undefined ? Number.NaN : Date.parse(created);
    candidates.push({ descriptor: referrer.descriptor, layers: parsed.manifest.layers, created, time: Number.isNaN(time) ? -Infinity : time, position });
  }
  if (candidates.length === 0) {
    throw new OcibootError("NOT_FOUND", `Cannot fetch referrer files of ${reference}: it has no referrer of type ${artifactType}`);
  }
  const newestFirst = [...candidates].sort((a, b) => b.time - a.time || b.position - a.position);
  const chosen = options.all === true ? newestFirst : newestFirst.slice(0, 1);

  const plans = chosen.map((candidate) => ({
    candidate,
    directory: options.all === true ? join(directory, candidate.descriptor.digest.replace(":", "-")) : directory,
    layers: titledLayers(candidate),
  }));
  if (plans.every((plan) => plan.layers.length === 0)) {
    const which = options.all === true ? "no referrer" : `the newest referrer (${chosen[0]?.descriptor.digest})`;
    throw new OcibootError("NOT_FOUND", `Cannot fetch referrer files of ${reference}: ${which} of type ${artifactType} has a titled file`);
  }

  const report: ReferrerFilesReport = { subject: listing.subject, artifactType, referrers: [] };
  for (const plan of plans) {
    await makeDirectory(plan.directory);
    const files: ReferrerFile[] = [];
    for (const { name, layer } of plan.layers) {
      const path = join(plan.directory, name);
      const { status } = await downloadBlob(store, layer, path, signal ? { signal } : {});
      files.push({ name, path, mediaType: layer.mediaType, digest: layer.digest, size: layer.size, status });
    }
    const entry: ReferrerFilesReport["referrers"][number] = { descriptor: plan.candidate.descriptor, directory: plan.directory, files };
    if (plan.candidate.created !== undefined) entry.created = plan.candidate.created;
    report.referrers.push(entry);
  }
  return report;
}

/** The layers that carry a title, each title checked as a file name and unique in its referrer. */
function titledLayers(candidate: Candidate): Array<{ name: string; layer: Descriptor }> {
  const seen = new Set<string>();
  const result: Array<{ name: string; layer: Descriptor }> = [];
  for (const layer of candidate.layers) {
    const title = titleOf(layer);
    if (title === undefined) continue;
    const name = safeFileName(title);
    if (seen.has(name)) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot fetch the files of ${candidate.descriptor.digest}: two layers are titled ${JSON.stringify(name)}`);
    }
    seen.add(name);
    result.push({ name, layer });
  }
  return result;
}

async function makeDirectory(path: string): Promise<void> {
  try {
    await mkdir(path, { recursive: true });
  } catch (error) {
    throw new OcibootError("LOCAL_IO", `Cannot create ${path}: ${errorMessage(error)}`, { cause: error });
  }
}
