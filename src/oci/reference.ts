import { OcibootError } from "../errors.ts";
import { parseDigest, type Digest } from "./digest.ts";

/**
 * A fully normalised image reference.
 *
 * `registry` is `host[:port]` (case as written; IPv6 in brackets, e.g. `[::1]:5000`) and `repository`
 * the path on that registry, with Docker Hub's implicit `docker.io` and `library/` filled in.
 * When both `tag` and `digest` are present the digest decides what is fetched; the tag is kept
 * only so that the reference prints back as the user wrote it.
 */
export interface Reference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: Digest;
}

/** A registry and a repository without tag or digest. */
export interface Repository {
  registry: string;
  repository: string;
}

/** Docker Hub's canonical name; references without a domain belong to it. */
export const DOCKER_HUB_REGISTRY = "docker.io";
/** The host that actually serves the Docker Hub registry API. */
export const DOCKER_HUB_ENDPOINT = "registry-1.docker.io";
/** The tag used when a reference names neither tag nor digest. */
export const DEFAULT_TAG = "latest";

// Grammar of github.com/distribution/reference v0.6.0 (regexp.go), restated:
// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [._] | __ | -+
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
// domain-name-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
// ipv6address := "[" [a-fA-F0-9:]+ "]" (distribution accepts any such bracketed form)
const IPV6_HOST = /^\[[a-fA-F0-9:]+\]$/;
const PORT = /^[0-9]+$/;
// tag := [\w][\w.-]{0,127} (docs/formats.md#protocol-limits)
const TAG = /^\w[\w.-]{0,127}$/;
// A bare 64-hex name is refused, as distribution's normalize.go does, because it is almost
// certainly an image ID typed without its `sha256:` prefix.
const IMAGE_ID = /^[a-f0-9]{64}$/;
// distribution/reference v0.6.0 RepositoryNameTotalLengthMax: the repository path (after Docker Hub
// normalisation, so `library/` counts) is at most 255 characters; the domain is not counted.
const REPOSITORY_PATH_LENGTH_MAX = 255;
const LEGACY_DOCKER_HUB = "index.docker.io";
const OFFICIAL_REPOSITORY_PREFIX = "library/";
const LOCALHOST = "localhost";

/**
 * Parses an image reference such as `alpine`, `ghcr.io/org/img:1.0`, `localhost:5000/x@sha256:…`
 * or `[::1]:5000/x:tag@sha256:…`, applying Docker Hub normalisation (normalize.go of
 * github.com/distribution/reference v0.6.0).
 *
 * @throws OcibootError INVALID_REFERENCE for anything that is not a valid reference.
 */
export function parseReference(input: string): Reference {
  if (typeof input !== "string") {
    throw new OcibootError("INVALID_REFERENCE", "Cannot parse reference: not a string");
  }
  if (input.length === 0) {
    throw referenceError(input, "empty");
  }

  let rest = input;
  let digest: Digest | undefined;
  let unsupportedDigest: OcibootError | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const digestText = rest.slice(at + 1);
    rest = rest.slice(0, at);
    try {
      digest = parseDigest(digestText).digest;
    } catch (error) {
      const reason = error instanceof OcibootError ? error.message : "invalid digest";
      const wrapped = new OcibootError("INVALID_REFERENCE", `Cannot parse reference "${shorten(input)}": ${reason}`, { cause: error });
      // A well-formed digest of an algorithm we lack is no typo: it is unsupported (exit 6), but
      // only once the rest of the reference has proved valid.
      if (!(error instanceof OcibootError && error.code === "UNSUPPORTED")) throw wrapped;
      unsupportedDigest = new OcibootError("UNSUPPORTED", wrapped.message, { cause: error });
    }
  }

  // A colon after the last slash starts the tag; one before it belongs to a port.
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > rest.lastIndexOf("/") && !rest.endsWith("]")) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) {
      throw referenceError(input, `tag "${shorten(tag)}" must match [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`);
    }
  }

  const { registry, repository } = splitName(rest, input);
  if (unsupportedDigest) throw unsupportedDigest;
  const reference: Reference = { registry, repository };
  if (tag !== undefined) reference.tag = tag;
  if (digest !== undefined) reference.digest = digest;
  return reference;
}

/**
 * Parses `host/repository` (or a Docker Hub short name) that carries neither tag nor digest,
 * as needed where a repository rather than an image is meant.
 *
 * @throws OcibootError INVALID_REFERENCE, also when a tag or digest is present.
 */
export function parseRepository(input: string): Repository {
  const reference = parseReference(input);
  if (reference.tag !== undefined || reference.digest !== undefined) {
    throw referenceError(input, "a repository name must not carry a tag or digest");
  }
  return { registry: reference.registry, repository: reference.repository };
}

/**
 * Formats a reference in full form (`docker.io/library/alpine:3`, `host:5000/x:t@sha256:…`);
 * `parseReference(formatReference(r))` gives `r` back.
 */
export function formatReference(reference: Reference): string {
  let text = `${reference.registry}/${reference.repository}`;
  if (reference.tag !== undefined) text += `:${reference.tag}`;
  if (reference.digest !== undefined) text += `@${reference.digest}`;
  return text;
}

/**
 * The one spelling of an image name that a store entry and a request must share to mean the same
 * image: `lab/small:v1`, `docker.io/lab/small:v1` and `index.docker.io/lab/small:v1` all give
 * `docker.io/lab/small:v1`, a missing tag is `latest`. Undefined for what is not a name: a digest
 * reference, text that does not parse, and (with `bareTagsAreTags`) a bare word such as `v1`, which
 * skopeo and oras write as an entry's name to mean a tag, not `docker.io/library/v1`.
 */
export function imageNameKey(name: string, options: { bareTagsAreTags?: boolean } = {}): string | undefined {
  if (options.bareTagsAreTags === true && !name.includes("/") && !name.includes(":")) return undefined;
  let reference: Reference;
  try {
    reference = parseReference(name);
  } catch {
    return undefined;
  }
  if (reference.digest !== undefined) return undefined;
  return formatReference({ ...reference, tag: reference.tag ?? DEFAULT_TAG });
}

/** Formats the repository part only: `registry/repository`. */
export function formatRepository(reference: Repository): string {
  return `${reference.registry}/${reference.repository}`;
}

/**
 * What to ask the registry for: the digest if present (it wins over a tag), else the tag,
 * else `latest`.
 */
export function referenceTarget(reference: Reference): string {
  return reference.digest ?? reference.tag ?? DEFAULT_TAG;
}

/**
 * True for registries on the loopback interface: `localhost`, any `127.0.0.0/8` address and
 * `[::1]`, each with or without a port. Such registries may be spoken to over plain HTTP
 * (docs/registries.md#credentials-tls-proxies, as containerd and onmetal-image do).
 */
export function isLoopbackRegistry(registry: string): boolean {
  const host = hostOf(registry).toLowerCase();
  if (host === LOCALHOST) return true;
  if (host.startsWith("[") && host.endsWith("]")) return isIpv6Loopback(host.slice(1, -1));
  const octets = host.split(".");
  return (
    octets.length === 4 &&
    octets[0] === "127" &&
    octets.every((octet) => /^(?:0|[1-9][0-9]{0,2})$/.test(octet) && Number(octet) <= 255)
  );
}

/**
 * The host (with port) to connect to for a registry name: Docker Hub's API lives on
 * `registry-1.docker.io`, every other registry on its own name.
 */
export function registryEndpointHost(registry: string): string {
  return registry === DOCKER_HUB_REGISTRY ? DOCKER_HUB_ENDPOINT : registry;
}

function splitName(name: string, input: string): Repository {
  // normalize.go: the first component is a domain only when it has a dot, a colon, is
  // "localhost" or contains uppercase (which a path component never may).
  const slash = name.indexOf("/");
  const first = slash < 0 ? "" : name.slice(0, slash);
  const isDomain =
    slash >= 0 && (first.includes(".") || first.includes(":") || first === LOCALHOST || first !== first.toLowerCase());

  let registry: string;
  let path: string;
  if (isDomain) {
    registry = parseRegistry(first, input);
    path = name.slice(slash + 1);
  } else {
    registry = DOCKER_HUB_REGISTRY;
    path = name;
  }
  if (registry === LEGACY_DOCKER_HUB) registry = DOCKER_HUB_REGISTRY;

  const components = path.split("/");
  for (const component of components) {
    if (component.length === 0) {
      throw referenceError(input, "repository path has an empty component");
    }
    if (!PATH_COMPONENT.test(component)) {
      const hint = PATH_COMPONENT.test(component.toLowerCase()) ? "must be lowercase" : "is not a valid path component";
      throw referenceError(input, `repository component "${shorten(component)}" ${hint}`);
    }
  }
  if (registry === DOCKER_HUB_REGISTRY && components.length === 1) {
    path = OFFICIAL_REPOSITORY_PREFIX + path;
  }
  if (!isDomain && IMAGE_ID.test(name)) {
    throw referenceError(input, "a 64-hex name looks like an image ID; write it as sha256:<hex>");
  }
  if (path.length > REPOSITORY_PATH_LENGTH_MAX) {
    throw referenceError(input, `repository path is longer than ${REPOSITORY_PATH_LENGTH_MAX} characters`);
  }
  return { registry, repository: path };
}

function parseRegistry(text: string, input: string): string {
  let host = text;
  let port: string | undefined;
  const portColon = text.startsWith("[") ? text.indexOf(":", text.indexOf("]")) : text.indexOf(":");
  if (portColon >= 0) {
    host = text.slice(0, portColon);
    port = text.slice(portColon + 1);
    // The grammar allows any digits; a port outside 1–65535 can only be a typo.
    if (!PORT.test(port) || Number(port) < 1 || Number(port) > 65535) {
      throw referenceError(input, `registry port "${shorten(port)}" must be a number from 1 to 65535`);
    }
    port = String(Number(port));
  }
  const validHost = IPV6_HOST.test(host) || (host.length > 0 && host.split(".").every((part) => DOMAIN_COMPONENT.test(part)));
  if (!validHost) {
    throw referenceError(input, `registry "${shorten(text)}" is not a valid host[:port]`);
  }
  // The host keeps its case, as in distribution: lowercasing "Host/x" would turn the domain into
  // a Docker Hub path component on the next parse ("host/x" → docker.io/host/x).
  return port === undefined ? host : `${host}:${port}`;
}

function hostOf(registry: string): string {
  if (registry.startsWith("[")) {
    const close = registry.indexOf("]");
    return close < 0 ? registry : registry.slice(0, close + 1);
  }
  const colon = registry.indexOf(":");
  return colon < 0 ? registry : registry.slice(0, colon);
}

function isIpv6Loopback(address: string): boolean {
  // Expands "::" and compares with 0:0:0:0:0:0:0:1, so "::1" and "0:0::1" both count.
  const halves = address.split("::");
  if (halves.length > 2) return false;
  const head = halves[0] === undefined || halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== undefined && halves[1] !== "" ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 2 && missing < 1) || (halves.length === 1 && missing !== 0)) return false;
  const groups = [...head, ...Array<string>(Math.max(missing, 0)).fill("0"), ...tail];
  if (!groups.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return false;
  return groups.every((group, index) => parseInt(group, 16) === (index === 7 ? 1 : 0));
}

function referenceError(input: string, reason: string): OcibootError {
  return new OcibootError("INVALID_REFERENCE", `Cannot parse reference "${shorten(input)}": ${reason}`);
}

function shorten(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
