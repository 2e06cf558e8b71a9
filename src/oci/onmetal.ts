import type { Descriptor } from "./descriptor.ts";

/**
 * Byte-exact encoding of the onmetal v1alpha1 image (Garden Linux's `_oci` feature, onmetal-image
 * ≤ v0.1.1), so that ociboot builds the very manifest digest onmetal-image builds.
 *
 * onmetal-image is Go: `json.Marshal` of image-spec v1.0 structs gives compact JSON without a trailing
 * newline, struct fields in declaration order (`schemaVersion, config, layers`; descriptors
 * `mediaType, digest, size, urls, annotations, platform`, empty ones omitted), map keys sorted, and
 * strings escaped the Go way (see {@link goJsonString}).
 */

/** The config blob: `{"commandLine":"…"}`, or `{}` when the command line is empty (Go `omitempty`). */
export function encodeOnmetalConfig(commandLine: string | undefined): Uint8Array {
  const body = commandLine ? `{"commandLine":${goJsonString(commandLine)}}` : "{}";
  return new TextEncoder().encode(body);
}

/** A manifest as onmetal-image writes it: no `mediaType` field, no annotations. */
export function encodeOnmetalManifest(config: Descriptor, layers: readonly Descriptor[]): Uint8Array {
  const body = `{"schemaVersion":2,"config":${goDescriptor(config)},"layers":[${layers.map(goDescriptor).join(",")}]}`;
  return new TextEncoder().encode(body);
}

/**
 * A manifest in the same Go encoding with a `mediaType` field after `schemaVersion`, as image-spec
 * v1.1 structs (ironcore-image) place it; optional `subject` (media type, digest and size only)
 * and annotations, keys sorted as Go sorts map keys.
 */
export function encodeGoManifest(
  mediaType: string,
  config: Descriptor,
  layers: readonly Descriptor[],
  annotations?: Record<string, string>,
  subject?: Descriptor,
): Uint8Array {
  const annotationPart = annotations && Object.keys(annotations).length > 0 ? `,"annotations":${goStringMap(annotations)}` : "";
  const subjectPart = subject ? `,"subject":${goDescriptor({ mediaType: subject.mediaType, digest: subject.digest, size: subject.size })}` : "";
  const body =
    `{"schemaVersion":2,"mediaType":${goJsonString(mediaType)},"config":${goDescriptor(config)},` +
    `"layers":[${layers.map(goDescriptor).join(",")}]${subjectPart}${annotationPart}}`;
  return new TextEncoder().encode(body);
}

/** An image index in the same Go encoding (image-spec v1.1 field order). */
export function encodeGoIndex(mediaType: string, manifests: readonly Descriptor[]): Uint8Array {
  const body = `{"schemaVersion":2,"mediaType":${goJsonString(mediaType)},"manifests":[${manifests.map(goDescriptor).join(",")}]}`;
  return new TextEncoder().encode(body);
}

/**
 * One descriptor, fields in image-spec v1.1 struct order (`mediaType, digest, size, urls,
 * annotations, data, platform, artifactType`), empty optional fields left out.
 */
export function goDescriptor(descriptor: Descriptor): string {
  let body = `{"mediaType":${goJsonString(descriptor.mediaType)},"digest":${goJsonString(descriptor.digest)},"size":${descriptor.size}`;
  if (descriptor.urls && descriptor.urls.length > 0) body += `,"urls":[${descriptor.urls.map(goJsonString).join(",")}]`;
  if (descriptor.annotations && Object.keys(descriptor.annotations).length > 0) {
    body += `,"annotations":${goStringMap(descriptor.annotations)}`;
  }
  if (descriptor.data) body += `,"data":${goJsonString(descriptor.data)}`;
  if (descriptor.platform) {
    const { architecture, os, variant } = descriptor.platform;
    body += `,"platform":{"architecture":${goJsonString(architecture)},"os":${goJsonString(os)}`;
    const osVersion = descriptor.platform["os.version"];
    if (osVersion) body += `,"os.version":${goJsonString(osVersion)}`;
    if (variant) body += `,"variant":${goJsonString(variant)}`;
    body += "}";
  }
  if (descriptor.artifactType) body += `,"artifactType":${goJsonString(descriptor.artifactType)}`;
  return `${body}}`;
}

/** A string map as Go's encoding/json writes it: keys sorted, strings escaped the Go way. */
export function goStringMap(map: Record<string, string>): string {
  // Go's encoding/json sorts map keys by their bytes; for strings UTF-16 order differs only
  // outside the BMP, which no annotation key uses.
  const keys = Object.keys(map).sort();
  return `{${keys.map((key) => `${goJsonString(key)}:${goJsonString(map[key] ?? "")}`).join(",")}}`;
}

const HEX = "0123456789abcdef";

/**
 * A JSON string literal exactly as Go's `encoding/json` (HTML escaping on, as `json.Marshal` does,
 * Go ≤ 1.21 as onmetal-image was built with) writes it: `<`, `>`, `&`, U+2028 and U+2029 as
 * `\u00XX`/`\u20XX`; `\n`, `\r`, `\t` short; other control characters (also `\b`, `\f`) as
 * `\u00XX`; DEL and all other characters literal; unpaired surrogates as `\ufffd` (Go sees them
 * as invalid UTF-8).
 */
export function goJsonString(text: string): string {
  let out = '"';
  for (const character of text) {
    const code = character.codePointAt(0) ?? 0;
    if (character === '"') out += '\\"';
    else if (character === "\\") out += "\\\\";
    else if (character === "\n") out += "\\n";
    else if (character === "\r") out += "\\r";
    else if (character === "\t") out += "\\t";
    else if (code < 0x20 || character === "<" || character === ">" || character === "&") {
      out += `\\u00${HEX[code >> 4]}${HEX[code & 0xf]}`;
    } else if (code === 0x2028 || code === 0x2029) out += `\\u${code.toString(16)}`;
    else if (code >= 0xd800 && code <= 0xdfff) out += "\\ufffd";
    else out += character;
  }
  return `${out}"`;
}
