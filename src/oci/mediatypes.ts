/** Media types of the OCI image spec v1.1 and the Docker registry API that ociboot understands. */
export const MediaType = {
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociEmpty: "application/vnd.oci.empty.v1+json",
  ociLayerTar: "application/vnd.oci.image.layer.v1.tar",
  ociLayerTarGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerManifestList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  dockerSchema1: "application/vnd.docker.distribution.manifest.v1+json",
  dockerSchema1Signed: "application/vnd.docker.distribution.manifest.v1+prettyjws",
} as const;

export const MANIFEST_MEDIA_TYPES: readonly string[] = [MediaType.ociManifest, MediaType.dockerManifest];
export const INDEX_MEDIA_TYPES: readonly string[] = [MediaType.ociIndex, MediaType.dockerManifestList];

/** The `Accept` list sent for manifests: OCI and Docker schema 2, never schema 1. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.ociManifest,
  MediaType.ociIndex,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
];

export function isManifestMediaType(mediaType: string): boolean {
  return MANIFEST_MEDIA_TYPES.includes(mediaType);
}

export function isIndexMediaType(mediaType: string): boolean {
  return INDEX_MEDIA_TYPES.includes(mediaType);
}

/** Annotation keys of the OCI image spec. */
export const Annotation = {
  refName: "org.opencontainers.image.ref.name",
  title: "org.opencontainers.image.title",
  created: "org.opencontainers.image.created",
} as const;

/** Size caps (docs/formats.md#protocol-limits): bounded reads of anything that is parsed in memory. */
export const Limits = {
  manifestBytes: 4 * 1024 * 1024,
  configBytes: 4 * 1024 * 1024,
  errorBodyBytes: 64 * 1024,
  tokenResponseBytes: 1024 * 1024,
  redirects: 10,
  /** Manifests nested below a root (index → manifest → subject …) that a graph walk follows. */
  graphDepth: 8,
  /** Distinct descriptors one graph walk visits, so a hostile index cannot make it unbounded. */
  graphNodes: 100_000,
} as const;
