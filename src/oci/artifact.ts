import { OcibootError } from "../errors.ts";
import { type Descriptor, isMediaType } from "./descriptor.ts";
import { toDigest } from "./digest.ts";
import type { ParsedManifest } from "./manifest.ts";
import { Annotation, MediaType } from "./mediatypes.ts";
import { goDescriptor, goJsonString, goStringMap } from "./onmetal.ts";

/** The content of the OCI empty descriptor: the two bytes `{}`. */
export const EMPTY_JSON_BYTES: Uint8Array = new TextEncoder().encode("{}");

/**
 * The OCI empty descriptor (image spec v1.1, manifest.md "Guidance for an Empty Descriptor"), with
 * its content inline in `data` as oras-go's `DescriptorEmptyJSON` carries it, so the same files
 * attached by oras and by ociboot give the same manifest bytes.
 */
export const EMPTY_DESCRIPTOR: Readonly<Descriptor> = Object.freeze({
  mediaType: MediaType.ociEmpty,
  digest: toDigest("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
  size: 2,
  data: "e30=",
});

/** What an artifact manifest that refers to a subject is made of. */
export interface ArtifactManifestInput {
  artifactType: string;
  /** One per attached file; none gives the single empty layer image spec v1.1 recommends. */
  layers: readonly Descriptor[];
  subject: Descriptor;
  annotations?: Readonly<Record<string, string>>;
}

/**
 * Encodes an OCI 1.1 artifact manifest the way oras-go v2 packs one for `oras attach`: Go field
 * order (`schemaVersion, mediaType, artifactType, config, layers, subject, annotations`), the
 * empty descriptor as config, compact JSON with Go's escaping.
 *
 * @throws OcibootError USAGE when `artifactType` is not a `type/subtype` media type.
 */
export function encodeArtifactManifest(input: ArtifactManifestInput): Uint8Array {
  if (!isMediaType(input.artifactType)) {
    throw new OcibootError("USAGE", `Cannot use artifact type "${input.artifactType}": not a type/subtype media type (RFC 6838)`);
  }
  // Image spec v1.1 manifest.md: an artifact without layers SHOULD carry one empty-descriptor layer.
  const layers = input.layers.length > 0 ? input.layers : [EMPTY_DESCRIPTOR];
  const subject: Descriptor = { mediaType: input.subject.mediaType, digest: input.subject.digest, size: input.subject.size };
  const annotations = input.annotations !== undefined && Object.keys(input.annotations).length > 0 ? `,"annotations":${goStringMap(input.annotations)}` : "";
  const body =
    `{"schemaVersion":2,"mediaType":${goJsonString(MediaType.ociManifest)},"artifactType":${goJsonString(input.artifactType)},` +
    `"config":${goDescriptor(EMPTY_DESCRIPTOR)},"layers":[${layers.map(goDescriptor).join(",")}],` +
    `"subject":${goDescriptor(subject)}${annotations}}`;
  return new TextEncoder().encode(body);
}

/**
 * The descriptor under which a manifest is listed among the referrers of its subject (distribution
 * spec v1.1, "Listing Referrers"): media type, digest and size, `artifactType` (the manifest's own,
 * else its config media type) and the manifest's annotations.
 */
export function referrerDescriptorOf(descriptor: Descriptor, parsed: ParsedManifest): Descriptor {
  const referrer: Descriptor = { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size };
  const artifactType = parsed.kind === "manifest" ? (parsed.manifest.artifactType ?? parsed.manifest.config.mediaType) : parsed.index.artifactType;
  if (artifactType !== undefined) referrer.artifactType = artifactType;
  const annotations = parsed.kind === "manifest" ? parsed.manifest.annotations : parsed.index.annotations;
  if (annotations !== undefined) referrer.annotations = annotations;
  return referrer;
}

/** The subject a manifest or index refers to, if any. */
export function subjectOf(parsed: ParsedManifest): Descriptor | undefined {
  return parsed.kind === "manifest" ? parsed.manifest.subject : parsed.index.subject;
}

/** The `org.opencontainers.image.title` of a layer, if any. */
export function titleOf(descriptor: Descriptor): string | undefined {
  return descriptor.annotations?.[Annotation.title];
}
