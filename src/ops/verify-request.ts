import type { ReadableStore } from "../content/store.ts";
import { isOcibootError, OcibootError } from "../errors.ts";
import type { Digest } from "../oci/digest.ts";
import type { ManifestSelection } from "./resolve.ts";
import { type TrustAnchors, type TrustOptions, type VerifiedSigner, verifyStoredImageSignature, verifyStoredManifestSignature } from "./signature.ts";
import { verifySignedFolder } from "./verify-signed.ts";
import {
  canVerifyOffline,
  type DirectoryCheckOptions,
  readSavedFetch,
  type SavedFetch,
  savedFetchMatches,
  verifyDirectory,
  verifyImage,
  verifyLayoutStore,
  verifySavedDirectory,
  type VerifyReport,
  type WholeStore,
} from "./verify.ts";

/** What was named to verify, as the command line parsed it. */
export type VerifySource =
  /** A registry reference; `pinned` is the digest it names (`host/repo@sha256:…`), if any. */
  | { kind: "registry"; text: string; pinned?: Digest }
  /** `oci:DIR[:REF]` or `oci-archive:FILE[:REF]`; `whole` when no REF was given (every image and blob). */
  | { kind: "layout" | "archive"; text: string; whole: boolean };

/** Everything `verify` was asked; {@link verifyRequested} chooses the one check that answers it. */
export interface VerifyRequest {
  /** Undefined when only a folder was named (`verify --dir DIR`). */
  source?: VerifySource;
  /** The folder fetch wrote, to check (`--dir`). */
  directory?: string;
  /** The roles and file names to check in the folder. */
  check: DirectoryCheckOptions;
  /** Which manifest of an index the folder was fetched from. */
  selection: ManifestSelection;
  /** The signature required, if any: the anchors (for a folder's saved material), and the options for the source (its name in a store). */
  trust?: { anchors: TrustAnchors; forSource: TrustOptions };
  /** Opens the source as one image (store and the reference to resolve in it). */
  openImage(): Promise<{ store: ReadableStore; reference: string; close(): Promise<void> }>;
  /** Opens a layout or archive named without REF as the whole store. */
  openWholeStore(): Promise<{ store: WholeStore; close(): Promise<void> }>;
  signal?: AbortSignal;
}

/** The report, and who signed what was checked when a signature was required. */
export interface VerifyOutcome {
  report: VerifyReport;
  signers?: VerifiedSigner[];
}

/**
 * Proves that what was named is exactly what was published, by the one check that fits:
 * - a folder alone, or a folder with a pin matching its own manifest.json: offline, from what fetch
 *   saved there (and with a signature required, the saved signature material; docs/trust.md);
 * - a whole layout or archive: every image and every blob in it;
 * - an image: its whole graph, or with a folder, the files fetch wrote from it.
 * A required signature is checked first, and the graph checked is the one it signed.
 *
 * @throws OcibootError USAGE when nothing was named, or a signature is asked of a whole store;
 *   SIGNATURE when no trusted signature verifies.
 */
export async function verifyRequested(request: VerifyRequest): Promise<VerifyOutcome> {
  const { source, directory, check, trust, signal } = request;
  const pinned = source?.kind === "registry" ? source.pinned : undefined;
  if (directory !== undefined && trust && (source === undefined || pinned !== undefined)) {
    const { signer, ...report } = await verifySignedFolder(directory, { trust: trust.anchors, ...(pinned !== undefined ? { pinned } : {}), ...check });
    return { report, signers: [signer] };
  }
  if (source === undefined) {
    if (directory === undefined) {
      throw new OcibootError("USAGE", "Cannot verify: name an image (REF, oci:DIR, oci-archive:FILE) or a folder fetch wrote (--dir DIR)");
    }
    return { report: await verifySavedDirectory(await readSavedFetch(directory), check) };
  }
  const whole = source.kind !== "registry" && source.whole && directory === undefined;
  if (whole && trust) throw new OcibootError("USAGE", `Cannot verify a signature for all of ${source.text}: name the image, ${source.text}:REF`);
  const saved = directory !== undefined && pinned !== undefined ? await pinnedSavedFetch(directory, pinned, check) : undefined;
  if (saved) return { report: await verifySavedDirectory(saved, check) };
  if (whole) {
    const opened = await request.openWholeStore();
    try {
      return { report: await verifyLayoutStore(opened.store, signal) };
    } finally {
      await opened.close();
    }
  }
  const image = await request.openImage();
  try {
    const { store, reference } = image;
    const sourceTrust = trust?.forSource;
    if (directory === undefined) {
      // The graph checked is the one whose signature verified (by digest), not a second answer to the tag.
      const trusted = sourceTrust ? await verifyStoredImageSignature(store, reference, sourceTrust, signal) : undefined;
      const report = await verifyImage(store, trusted?.root.digest ?? reference, signal);
      return trusted ? { report, signers: trusted.signers } : { report };
    }
    const trusted = sourceTrust ? await verifyStoredManifestSignature(store, reference, request.selection, sourceTrust, signal) : undefined;
    const report = await verifyDirectory(store, reference, directory, { ...request.selection, ...(await withRecordedNames(directory, check)) });
    if (!trusted) return { report };
    if (report.digest !== trusted.digest) {
      throw new OcibootError("SIGNATURE", `Cannot verify ${source.text}: it resolved to ${trusted.digest}, whose signature verified, then to ${report.digest}`);
    }
    return { report, signers: [trusted.signer] };
  } finally {
    await image.close();
  }
}

/**
 * A pin (`REF@sha256:…`) that is the folder's own manifest.json: the pin already proves the
 * manifest, so the folder is checked without the registry (which may be down).
 */
async function pinnedSavedFetch(directory: string, pin: Digest, check: DirectoryCheckOptions): Promise<SavedFetch | undefined> {
  const saved = await savedFetchIn(directory);
  return saved && savedFetchMatches(saved, pin) && canVerifyOffline(saved, check) ? saved : undefined;
}

/** The names and roles fetch recorded in the folder, under those given on the command line. */
async function withRecordedNames(directory: string, check: DirectoryCheckOptions): Promise<DirectoryCheckOptions> {
  const record = (await savedFetchIn(directory))?.record;
  if (!record) return check;
  const merged: DirectoryCheckOptions = { ...check, fileNames: { ...record.fileNames, ...check.fileNames } };
  const roles = check.roles ?? record.roles;
  if (roles) merged.roles = roles;
  return merged;
}

/** What fetch saved in the folder, or undefined for a folder without manifest.json. */
function savedFetchIn(directory: string): Promise<SavedFetch | undefined> {
  return readSavedFetch(directory).catch((error: unknown) => {
    if (isOcibootError(error, "NOT_FOUND")) return undefined;
    throw error;
  });
}
