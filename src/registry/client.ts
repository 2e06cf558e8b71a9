import { createHash } from "node:crypto";
import type { RetryChain } from "../retry.ts";
import { OcibootError } from "../errors.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type Digest, parseDigest } from "../oci/digest.ts";
import { parseManifest } from "../oci/manifest.ts";
import { Limits, MANIFEST_ACCEPT, MediaType } from "../oci/mediatypes.ts";
import { ingestStream } from "../content/ingest.ts";
import { ContentVerifier } from "../content/verify.ts";
import { authenticationHint, Authorizer, repositoryScope } from "./auth/authorizer.ts";
import { errorFromResponse } from "./errors.ts";
import { type HttpMethod, type HttpRequest, type HttpResponse, readBounded, redactUrl, type RequestBody, type ResponseBody, type Transport } from "./transport.ts";
import { parseStrictJson } from "../oci/strict-json.ts";

/** Upload tuning: blobs up to `monolithicLimit` go in one PUT, larger ones in PATCH chunks of `chunkSize`. */
export interface UploadOptions {
  /** Largest blob sent as one streamed PUT (bytes). */
  monolithicLimit?: number;
  /** Size of each PATCH of a chunked upload (bytes). */
  chunkSize?: number;
}

export const DEFAULT_UPLOAD_OPTIONS: Readonly<Required<UploadOptions>> = {
  monolithicLimit: 256 * 1024 * 1024,
  chunkSize: 64 * 1024 * 1024,
};

/** A manifest as fetched: its bytes, checked against the digest, and the descriptor that names them. */
export interface FetchedManifest {
  descriptor: Descriptor;
  bytes: Uint8Array;
}

/** An open blob download: the raw body (Buffers, no copies) and where it starts. */
export interface OpenedBlob {
  /** Unverified bytes from `offset` on; fails with NETWORK if the connection ends early. */
  body: AsyncIterable<Buffer>;
  /** The requested offset when the registry honoured the range exactly, else 0. */
  offset: number;
  /** Bytes the body will carry, when the registry said. */
  length: number | undefined;
  /** Abandons the download and frees its connection. */
  close(): void;
  /** Present when the body is read into pooled blocks: gives a consumed chunk's memory back. */
  release?(chunk: Uint8Array): void;
  /** Present when every chunk but the last is a whole page-aligned block of this many bytes' alignment. */
  alignment?: number;
}

/** Blobs from this size on are read with bulk GETs. */
const BULK_MIN_BYTES = 16 * 1024 * 1024;

/** Result of a manifest PUT. */
export interface PutManifestResult {
  digest: Digest;
  /** The `OCI-Subject` header: set when the registry indexed the manifest's subject for the referrers API. */
  subject: string | undefined;
}

/** Where a registry lives and how to talk to it. */
export interface RegistryEndpoint {
  /** The registry as named in references, e.g. `docker.io` or `127.0.0.1:5000`. */
  name: string;
  /** Base URL of the API host, e.g. `https://registry-1.docker.io`. */
  url: URL;
}

const SCHEMA1_TYPES: readonly string[] = [MediaType.dockerSchema1, MediaType.dockerSchema1Signed];

/**
 * The OCI distribution protocol for one registry: manifests, blobs, tags, uploads, mounts and the
 * referrers API. Authentication is the Authorizer's; transport concerns the Transport's.
 */
export class RegistryClient {
  readonly endpoint: RegistryEndpoint;
  readonly #transport: Transport;
  readonly #auth: Authorizer;
  readonly #upload: Required<UploadOptions>;

  constructor(options: { endpoint: RegistryEndpoint; transport: Transport; authorizer: Authorizer; upload?: UploadOptions }) {
    this.endpoint = options.endpoint;
    this.#transport = options.transport;
    this.#auth = options.authorizer;
    this.#upload = { ...DEFAULT_UPLOAD_OPTIONS, ...options.upload };
  }

  /** The URL of a blob of `repository`. */
  blobUrl(repository: string, digest: string): URL {
    return this.#url(repository, "blobs", digest);
  }

  /** The URL of a manifest of `repository`, by tag or digest. */
  manifestUrl(repository: string, reference: string): URL {
    return this.#url(repository, "manifests", reference);
  }

  /**
   * The `Authorization` value that pulls from `repository` (undefined for an anonymous registry):
   * for commands that hand a URL to another HTTP client.
   */
  pullAuthorization(repository: string, signal?: AbortSignal): Promise<string | undefined> {
    return this.#auth.authorization([repositoryScope(repository, ["pull"])], signal);
  }

  /** `GET /v2/` through the full authentication flow, as `docker login` checks credentials. */
  ping(signal?: AbortSignal): Promise<HttpResponse> {
    return this.#auth.send({ method: "GET", url: new URL("/v2/", this.endpoint.url), ...(signal ? { signal } : {}) }, []);
  }

  /**
   * Fetches a manifest or index by tag or digest, bounded to 4 MiB. The digest is computed from
   * the bytes (never taken from `Docker-Content-Digest`, which must agree when present); a digest
   * reference must match. Docker schema 1 is refused.
   */
  async getManifest(repository: string, reference: string, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const action = `fetch manifest ${this.#describe(repository, reference)}`;
    const response = await this.#send(
      { method: "GET", url: this.#url(repository, "manifests", reference), headers: { accept: MANIFEST_ACCEPT.join(", ") }, ...signalOf(options) },
      [repositoryScope(repository, ["pull"])],
    );
    if (response.status !== 200) throw await this.#error(response, action);
    const contentType = bareMediaType(response.headers.get("content-type"));
    if (contentType !== undefined && SCHEMA1_TYPES.includes(contentType)) {
      response.body.destroy();
      throw new OcibootError("UNSUPPORTED", `Cannot ${action}: Docker schema 1 manifests are not supported; push the image again with a current client`);
    }
    const declaredLength = Number(response.headers.get("content-length") ?? Number.NaN);
    if (declaredLength > Limits.manifestBytes) {
      response.body.destroy();
      throw new OcibootError("UNSAFE_CONTENT", `Cannot ${action}: ${declaredLength} bytes is more than the ${Limits.manifestBytes}-byte limit`);
    }
    const { bytes, truncated } = await readBounded(response.body, Limits.manifestBytes);
    if (truncated) {
      throw new OcibootError("UNSAFE_CONTENT", `Cannot ${action}: more than the ${Limits.manifestBytes}-byte limit`);
    }
    if (Number.isFinite(declaredLength) && bytes.byteLength !== declaredLength) {
      throw new OcibootError("NETWORK", `Cannot ${action}: received ${bytes.byteLength} of ${declaredLength} bytes`);
    }
    const requested = isDigestReference(reference) ? parseDigest(reference) : undefined;
    const algorithm = requested?.algorithm ?? "sha256";
    const hex = createHash(algorithm).update(bytes).digest("hex");
    const digest = `${algorithm}:${hex}` as Digest;
    if (requested !== undefined && requested.digest !== digest) {
      throw new OcibootError("INTEGRITY", `Cannot ${action}: content hashes to ${digest}`, { details: { expected: reference, actual: digest } });
    }
    const announced = response.headers.get("docker-content-digest");
    if (announced !== undefined && announced.startsWith(`${algorithm}:`) && announced !== digest) {
      throw new OcibootError("INTEGRITY", `Cannot ${action}: the registry names it ${announced} but its content hashes to ${digest}`);
    }
    const parsed = parseManifest(bytes, contentType);
    const descriptor: Descriptor = { mediaType: parsed.mediaType, digest, size: bytes.byteLength };
    const artifactType = parsed.kind === "manifest" ? parsed.manifest.artifactType : parsed.index.artifactType;
    if (artifactType !== undefined) descriptor.artifactType = artifactType;
    return { descriptor, bytes };
  }

  /**
   * Asks whether a manifest exists (HEAD). The returned descriptor's digest comes from the
   * registry's header and is only a hint: never use it to trust content.
   */
  async headManifest(repository: string, reference: string, options: { signal?: AbortSignal } = {}): Promise<Descriptor | undefined> {
    const response = await this.#send(
      { method: "HEAD", url: this.#url(repository, "manifests", reference), headers: { accept: MANIFEST_ACCEPT.join(", ") }, ...signalOf(options) },
      [repositoryScope(repository, ["pull"])],
    );
    await response.body.dump().catch(() => undefined);
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await this.#error(response, `check manifest ${this.#describe(repository, reference)}`);
    const digest = response.headers.get("docker-content-digest") ?? (isDigestReference(reference) ? reference : undefined);
    const size = Number(response.headers.get("content-length"));
    const mediaType = bareMediaType(response.headers.get("content-type")) ?? MediaType.ociManifest;
    if (digest === undefined || !Number.isSafeInteger(size)) return undefined;
    return { mediaType, digest: digest as Digest, size };
  }

  /** True when the repository holds the manifest or index (HEAD). */
  async manifestExists(repository: string, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const response = await this.#send(
      { method: "HEAD", url: this.#url(repository, "manifests", digest), headers: { accept: MANIFEST_ACCEPT.join(", ") }, ...signalOf(options) },
      [repositoryScope(repository, ["pull"])],
    );
    await response.body.dump().catch(() => undefined);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.#error(response, `check manifest ${this.#describe(repository, digest)}`);
  }

  /** True when the repository holds the blob (HEAD). */
  async blobExists(repository: string, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const response = await this.#send(
      { method: "HEAD", url: this.#url(repository, "blobs", digest), ...signalOf(options) },
      [repositoryScope(repository, ["pull"])],
    );
    await response.body.dump().catch(() => undefined);
    if (response.status === 200) return true;
    if (response.status === 404) return false;
    throw await this.#error(response, `check blob ${this.#describe(repository, digest)}`);
  }

  /**
   * Opens a blob download, from `offset` if asked. A range is taken only on `206` with an exact
   * `Content-Range` (`bytes offset-(size-1)/size`); anything else restarts from 0 and says so in
   * `offset`. A body longer than the descriptor says is refused before any byte is read.
   */
  async openBlob(repository: string, descriptor: Descriptor, options: { offset?: number; signal?: AbortSignal; retryChain?: RetryChain } = {}): Promise<OpenedBlob> {
    const action = `fetch blob ${this.#describe(repository, descriptor.digest)}`;
    const requestedOffset = options.offset ?? 0;
    const wantRange = requestedOffset > 0 && requestedOffset < descriptor.size;
    const headers: Record<string, string> = {};
    if (wantRange) headers["range"] = `bytes=${requestedOffset}-`;
    const scopes = [repositoryScope(repository, ["pull"])];
    // Large blobs are worth block reads of their own (see bulkGet).
    const bulk = descriptor.size >= BULK_MIN_BYTES;
    let response = await this.#send({ method: "GET", url: this.#url(repository, "blobs", descriptor.digest), headers, bulk, ...chainedSignalOf(options) }, scopes);
    let offset = 0;
    if (wantRange && response.status === 206) {
      if (exactContentRange(response.headers.get("content-range"), requestedOffset, descriptor.size)) {
        offset = requestedOffset;
      } else {
        this.#transport.debug(`Range answer for ${descriptor.digest} has Content-Range ${response.headers.get("content-range") ?? "(none)"}; restarting from 0`);
        response.body.destroy();
        response = await this.#send({ method: "GET", url: this.#url(repository, "blobs", descriptor.digest), bulk, ...chainedSignalOf(options) }, scopes);
      }
    } else if (wantRange && response.status === 416) {
      await response.body.dump().catch(() => undefined);
      response = await this.#send({ method: "GET", url: this.#url(repository, "blobs", descriptor.digest), bulk, ...chainedSignalOf(options) }, scopes);
    }
    if (response.status !== 200 && !(offset > 0 && response.status === 206)) throw await this.#error(response, action);
    const expected = descriptor.size - offset;
    const lengthHeader = response.headers.get("content-length");
    const length = lengthHeader === undefined ? undefined : Number(lengthHeader);
    if (length !== undefined && Number.isFinite(length) && length !== expected) {
      response.body.destroy();
      throw new OcibootError(
        "INTEGRITY",
        `Cannot ${action}: the registry sends ${length} bytes but ${expected} are expected (descriptor size ${descriptor.size}, offset ${offset})`,
      );
    }
    const body = response.body;
    const opened: OpenedBlob = { body: countingBody(body, length, action), offset, length, close: () => body.destroy() };
    if (body.release !== undefined) opened.release = (chunk) => body.release?.(chunk);
    if (body.alignment !== undefined) opened.alignment = body.alignment;
    return opened;
  }

  /**
   * Lists tags, following `Link: <…>; rel="next"` pages on the same origin only, at most
   * `maxPages` pages.
   */
  async *listTags(repository: string, options: { pageSize?: number; maxPages?: number; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const maxPages = options.maxPages ?? 1000;
    let url: URL | undefined = this.#url(repository, "tags", "list");
    if (options.pageSize !== undefined) url.searchParams.set("n", String(options.pageSize));
    const origin = url.origin;
    for (let page = 0; url !== undefined; page++) {
      if (page >= maxPages) {
        throw new OcibootError("REGISTRY", `Cannot list tags of ${this.#describe(repository)}: more than ${maxPages} pages`);
      }
      const action = `list tags of ${this.#describe(repository)}`;
      const response: HttpResponse = await this.#send({ method: "GET", url, headers: { accept: "application/json" }, ...signalOf(options) }, [
        repositoryScope(repository, ["pull"]),
      ]);
      if (response.status !== 200) throw await this.#error(response, action);
      const { bytes, truncated } = await readBounded(response.body, Limits.manifestBytes);
      if (truncated) throw new OcibootError("UNSAFE_CONTENT", `Cannot ${action}: a page is larger than ${Limits.manifestBytes} bytes`);
      let tags: unknown;
      try {
        tags = (parseStrictJson(bytes.toString("utf8")) as { tags?: unknown }).tags;
      } catch (cause) {
        throw new OcibootError("REGISTRY", `Cannot ${action}: the answer is not JSON`, { cause });
      }
      if (tags !== null && tags !== undefined && !Array.isArray(tags)) throw new OcibootError("REGISTRY", `Cannot ${action}: "tags" is not a list`);
      for (const tag of tags ?? []) if (typeof tag === "string") yield tag;
      const next = nextLink(response.headers.getAll("link"), url);
      if (next !== undefined && next.origin !== origin) {
        throw new OcibootError("REGISTRY", `Cannot ${action}: the next page is on another origin (${redactUrl(next)})`);
      }
      url = next;
    }
  }

  /**
   * Uploads a blob from a stream, never holding it whole in memory: one streamed PUT up to the
   * monolithic limit, else PATCH chunks with `Content-Range`, then the closing PUT. The stream is
   * verified against the descriptor on the way; `Docker-Content-Digest` of the answer must match.
   * With `mountFrom`, first asks the registry to mount the blob from that repository.
   */
  async uploadBlob(
    repository: string,
    descriptor: Descriptor,
    content: ReadableStream<Uint8Array>,
    options: { signal?: AbortSignal; mountFrom?: string } = {},
  ): Promise<{ mounted: boolean }> {
    const action = `upload blob ${this.#describe(repository, descriptor.digest)}`;
    // Checked on its way out like content on its way into any store (content/ingest.ts); the registry checks the digest again.
    const verified = ingestStream(content, new ContentVerifier(descriptor), { where: this.#describe(repository, descriptor.digest), ...signalOf(options) });
    let location: URL;
    try {
      const started = await this.#startUpload(repository, descriptor, options);
      if (started.mounted) {
        await verified.cancel().catch(() => undefined);
        return { mounted: true };
      }
      location = started.location;
      // Both strategies send an explicit Content-Length with a streamed body. undici writes the
      // request itself on Node and on Deno alike (Deno's own fetch would drop the length and go
      // chunked); distribution accepts both, and deno.test.ts checks it on Deno.
      if (descriptor.size <= this.#upload.monolithicLimit) {
        const url = new URL(location.href);
        url.searchParams.set("digest", descriptor.digest);
        const response = await this.#sendStreamed(repository, {
          method: "PUT",
          url,
          headers: { "content-type": "application/octet-stream", "content-length": String(descriptor.size) },
          body: descriptor.size === 0 ? new Uint8Array(0) : verified,
          ...signalOf(options),
        }, action);
        await this.#finishUpload(response, descriptor, action);
        return { mounted: false };
      }
      const slicer = new StreamSlicer(verified);
      for (let start = 0; start < descriptor.size; start += this.#upload.chunkSize) {
        const length = Math.min(this.#upload.chunkSize, descriptor.size - start);
        const end = start + length - 1;
        const response = await this.#sendStreamed(repository, {
          method: "PATCH",
          url: location,
          headers: {
            "content-type": "application/octet-stream",
            "content-length": String(length),
            "content-range": `${start}-${end}`,
          },
          body: slicer.next(length),
          ...signalOf(options),
        }, action);
        if (response.status !== 202) throw await this.#error(response, action);
        await response.body.dump().catch(() => undefined);
        const range = response.headers.get("range");
        if (range !== undefined && !new RegExp(`^(?:bytes=)?0-${end}$`).test(range.trim())) {
          throw new OcibootError("REGISTRY", `Cannot ${action}: the registry acknowledged ${range} after a chunk ending at ${end}`);
        }
        location = this.#location(response, location, action);
      }
      await slicer.finish();
      const url = new URL(location.href);
      url.searchParams.set("digest", descriptor.digest);
      const response = await this.#send(
        { method: "PUT", url, headers: { "content-length": "0" }, body: new Uint8Array(0), retry: false, ...signalOf(options) },
        [repositoryScope(repository, ["pull", "push"])],
      );
      await this.#finishUpload(response, descriptor, action);
      return { mounted: false };
    } catch (error) {
      await verified.cancel(error).catch(() => undefined);
      throw error;
    }
  }

  /** Asks the registry to mount a blob from another repository; true when it did (201). */
  async mountBlob(repository: string, descriptor: Descriptor, fromRepository: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const started = await this.#startUpload(repository, descriptor, { ...options, mountFrom: fromRepository });
    if (!started.mounted) {
      // Abandon the upload session the registry opened instead.
      const cancel = await this.#send({ method: "DELETE", url: started.location }, [repositoryScope(repository, ["pull", "push"])]).catch(() => undefined);
      await cancel?.body.dump().catch(() => undefined);
    }
    return started.mounted;
  }

  /**
   * Puts a manifest under a tag or its digest with its media type as `Content-Type` (distribution
   * requires them to agree). The registry's `Docker-Content-Digest` must equal the digest of
   * the bytes sent.
   */
  async putManifest(
    repository: string,
    reference: string,
    mediaType: string,
    bytes: Uint8Array,
    options: { signal?: AbortSignal } = {},
  ): Promise<PutManifestResult> {
    const action = `push manifest ${this.#describe(repository, reference)}`;
    const algorithm = isDigestReference(reference) ? parseDigest(reference).algorithm : "sha256";
    const digest = `${algorithm}:${createHash(algorithm).update(bytes).digest("hex")}` as Digest;
    if (isDigestReference(reference) && reference !== digest) {
      throw new OcibootError("INTEGRITY", `Cannot ${action}: the manifest hashes to ${digest}`);
    }
    const response = await this.#send(
      {
        method: "PUT",
        url: this.#url(repository, "manifests", reference),
        headers: { "content-type": mediaType, "content-length": String(bytes.byteLength) },
        body: bytes,
        ...signalOf(options),
      },
      [repositoryScope(repository, ["pull", "push"])],
    );
    if (response.status !== 201 && response.status !== 200) throw await this.#error(response, action);
    await response.body.dump().catch(() => undefined);
    const announced = response.headers.get("docker-content-digest");
    if (announced !== undefined && announced !== digest) {
      throw new OcibootError("INTEGRITY", `Cannot ${action}: the registry stored ${announced} but ${digest} was sent`);
    }
    return { digest, subject: response.headers.get("oci-subject") };
  }

  /** Deletes a manifest by digest. */
  async deleteManifest(repository: string, digest: Digest, options: { signal?: AbortSignal } = {}): Promise<void> {
    const response = await this.#send({ method: "DELETE", url: this.#url(repository, "manifests", digest), ...signalOf(options) }, [
      repositoryScope(repository, ["pull", "push"]),
    ]);
    if (response.status !== 202 && response.status !== 200) throw await this.#error(response, `delete manifest ${this.#describe(repository, digest)}`);
    await response.body.dump().catch(() => undefined);
  }

  /**
   * Asks the referrers API (OCI distribution spec v1.1) for manifests whose subject is `subject`.
   * Returns undefined when the registry has no referrers API (distribution 2.8 answers 404
   * with text/plain), so the caller falls back to the `sha256-<hex>` tag.
   */
  async referrersApi(repository: string, subject: Digest, options: { artifactType?: string; signal?: AbortSignal } = {}): Promise<Descriptor[] | undefined> {
    const action = `list referrers of ${this.#describe(repository, subject)}`;
    let url: URL | undefined = this.#url(repository, "referrers", subject);
    if (options.artifactType !== undefined) url.searchParams.set("artifactType", options.artifactType);
    const origin = url.origin;
    const referrers: Descriptor[] = [];
    for (let page = 0; url !== undefined; page++) {
      if (page >= 100) throw new OcibootError("REGISTRY", `Cannot ${action}: more than 100 pages`);
      const response: HttpResponse = await this.#send({ method: "GET", url, headers: { accept: MediaType.ociIndex }, ...signalOf(options) }, [
        repositoryScope(repository, ["pull"]),
      ]);
      const contentType = bareMediaType(response.headers.get("content-type"));
      // 404, 400 and 405 (or a 200 that is no index) come from registries without the API.
      const unsupported = response.status === 404 || response.status === 400 || response.status === 405;
      if (page === 0 && (unsupported || (response.status === 200 && contentType !== MediaType.ociIndex))) {
        await response.body.dump().catch(() => undefined);
        return undefined;
      }
      if (response.status !== 200) throw await this.#error(response, action);
      const { bytes, truncated } = await readBounded(response.body, Limits.manifestBytes);
      if (truncated) throw new OcibootError("UNSAFE_CONTENT", `Cannot ${action}: a page is larger than ${Limits.manifestBytes} bytes`);
      const parsed = parseManifest(bytes, MediaType.ociIndex);
      if (parsed.kind !== "index") throw new OcibootError("REGISTRY", `Cannot ${action}: the answer is not an index`);
      referrers.push(...parsed.index.manifests);
      const next = nextLink(response.headers.getAll("link"), url);
      if (next !== undefined && next.origin !== origin) {
        throw new OcibootError("REGISTRY", `Cannot ${action}: the next page is on another origin (${redactUrl(next)})`);
      }
      url = next;
    }
    return referrers;
  }

  /** A short name for messages: `host/repository[:tag|@digest]`. */
  #describe(repository: string, reference?: string): string {
    const base = `${this.endpoint.name}/${repository}`;
    if (reference === undefined) return base;
    return isDigestReference(reference) ? `${base}@${reference}` : `${base}:${reference}`;
  }

  #url(repository: string, kind: "manifests" | "blobs" | "tags" | "referrers", reference: string): URL {
    // Tags and digests are URL-safe as they are; registries differ on decoding an escaped ":".
    const segment = /^[A-Za-z0-9_.:+=-]+$/.test(reference) ? reference : encodeURIComponent(reference);
    return new URL(`/v2/${repository}/${kind}/${segment}`, this.endpoint.url);
  }

  #send(request: HttpRequest, scopes: readonly string[]): Promise<HttpResponse> {
    return this.#auth.send(request, scopes);
  }

  /** A request with a one-shot body; a challenge on it is answered by the authorizer, but the body cannot be re-sent. */
  async #sendStreamed(repository: string, request: HttpRequest & { method: HttpMethod; body: RequestBody }, action: string): Promise<HttpResponse> {
    const response = await this.#send(request, [repositoryScope(repository, ["pull", "push"])]);
    if (response.status === 401) throw await this.#error(response, action);
    return response;
  }

  async #startUpload(
    repository: string,
    descriptor: Descriptor,
    options: { signal?: AbortSignal; mountFrom?: string },
  ): Promise<{ mounted: true } | { mounted: false; location: URL }> {
    const url = this.#url(repository, "blobs", "uploads");
    url.pathname += "/";
    const scopes = [repositoryScope(repository, ["pull", "push"])];
    if (options.mountFrom !== undefined && options.mountFrom !== repository) {
      url.searchParams.set("mount", descriptor.digest);
      url.searchParams.set("from", options.mountFrom);
      scopes.push(repositoryScope(options.mountFrom, ["pull"]));
    }
    const action = `start upload of ${this.#describe(repository, descriptor.digest)}`;
    const response = await this.#send({ method: "POST", url, headers: { "content-length": "0" }, body: new Uint8Array(0), ...signalOf(options) }, scopes);
    if (response.status === 201 && options.mountFrom !== undefined) {
      await response.body.dump().catch(() => undefined);
      const announced = response.headers.get("docker-content-digest");
      if (announced !== undefined && announced !== descriptor.digest) {
        throw new OcibootError("INTEGRITY", `Cannot mount ${descriptor.digest} into ${this.#describe(repository)}: the registry mounted ${announced}`);
      }
      return { mounted: true };
    }
    if (response.status !== 202) throw await this.#error(response, action);
    await response.body.dump().catch(() => undefined);
    return { mounted: false, location: this.#location(response, url, action) };
  }

  #location(response: HttpResponse, base: URL, action: string): URL {
    const location = response.headers.get("location");
    if (location === undefined) throw new OcibootError("REGISTRY", `Cannot ${action}: the registry sent no upload Location`);
    let url: URL;
    try {
      url = new URL(location, base);
    } catch (cause) {
      throw new OcibootError("REGISTRY", `Cannot ${action}: invalid upload Location`, { cause });
    }
    if (url.protocol !== this.endpoint.url.protocol && url.protocol === "http:") {
      throw new OcibootError("TLS", `Cannot ${action}: the upload Location leaves HTTPS for plain HTTP`);
    }
    return url;
  }

  async #finishUpload(response: HttpResponse, descriptor: Descriptor, action: string): Promise<void> {
    if (response.status !== 201 && response.status !== 204 && response.status !== 200) throw await this.#error(response, action);
    await response.body.dump().catch(() => undefined);
    const announced = response.headers.get("docker-content-digest");
    if (announced !== undefined && announced !== descriptor.digest) {
      throw new OcibootError("INTEGRITY", `Cannot ${action}: the registry stored ${announced}`);
    }
  }

  async #error(response: HttpResponse, action: string): Promise<OcibootError> {
    const error = await errorFromResponse(response, action);
    if (response.status === 401) {
      const hint = authenticationHint(await this.#auth.credential(), this.endpoint.name);
      if (hint) return new OcibootError(error.code, `${error.message}${hint}`, { details: error.details ?? {} });
    }
    return error;
  }
}

/** The signal and the request chain of a blob read, as request fields. */
function chainedSignalOf(options: { signal?: AbortSignal; retryChain?: RetryChain }): { signal?: AbortSignal; retryChain?: RetryChain } {
  return options.retryChain === undefined ? signalOf(options) : { ...signalOf(options), retryChain: options.retryChain };
}

function signalOf(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

/** A `Content-Type` without parameters, lower case. */
export function bareMediaType(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return undefined;
  const bare = contentType.split(";")[0]?.trim().toLowerCase();
  return bare === "" ? undefined : bare;
}

function isDigestReference(reference: string): boolean {
  return /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(reference) && reference.includes(":");
}

/** `bytes start-end/size` naming exactly the rest of the blob from `offset`. */
function exactContentRange(header: string | undefined, offset: number, size: number): boolean {
  if (header === undefined) return false;
  const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header.trim());
  if (match === null) return false;
  return Number(match[1]) === offset && Number(match[2]) === size - 1 && (match[3] === "*" || Number(match[3]) === size);
}

/** The `rel="next"` target of Link headers (RFC 8288), resolved against the current URL. */
export function nextLink(values: readonly string[], base: URL): URL | undefined {
  for (const value of values) {
    for (const part of value.split(/,(?=\s*<)/)) {
      const match = /^\s*<([^>]*)>\s*;(.*)$/.exec(part);
      if (match === null) continue;
      const parameters = match[2] ?? "";
      if (!/(?:^|;)\s*rel\s*=\s*"?(?:[^";]*\s)?next(?:\s[^";]*)?"?\s*(?:;|$)/i.test(parameters)) continue;
      try {
        return new URL(match[1] ?? "", base);
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

/** Passes body chunks through; a body that ends before its Content-Length fails as NETWORK, never as success. */
async function* countingBody(body: ResponseBody, length: number | undefined, action: string): AsyncGenerator<Buffer> {
  let received = 0;
  for await (const chunk of body) {
    received += chunk.byteLength;
    yield chunk;
  }
  if (length !== undefined && Number.isFinite(length) && received < length) {
    throw new OcibootError("NETWORK", `Cannot ${action}: the connection ended after ${received} of ${length} bytes`);
  }
}

/** Cuts a stream into consecutive pieces of exact lengths without copying more than a split chunk. */
class StreamSlicer {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #pending: Uint8Array | undefined;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  /** The next `length` bytes as an async iterable; fails if the stream ends first. */
  async *next(length: number): AsyncGenerator<Uint8Array> {
    let remaining = length;
    while (remaining > 0) {
      let chunk = this.#pending;
      this.#pending = undefined;
      if (chunk === undefined) {
        const { done, value } = await this.#reader.read();
        if (done) throw new OcibootError("INTEGRITY", `Cannot upload: the content ended ${remaining} bytes early`);
        chunk = value;
      }
      if (chunk.byteLength > remaining) {
        this.#pending = chunk.subarray(remaining);
        chunk = chunk.subarray(0, remaining);
      }
      remaining -= chunk.byteLength;
      if (chunk.byteLength > 0) yield chunk;
    }
  }

  /** Reads to the end so the verifying stage checks the digest; fails on any byte left over. */
  async finish(): Promise<void> {
    if (this.#pending !== undefined && this.#pending.byteLength > 0) {
      throw new OcibootError("INTEGRITY", "Cannot upload: the content is longer than its descriptor says");
    }
    for (;;) {
      const { done, value } = await this.#reader.read();
      if (done) return;
      if (value.byteLength > 0) throw new OcibootError("INTEGRITY", "Cannot upload: the content is longer than its descriptor says");
    }
  }
}
