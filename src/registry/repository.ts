import { OcibootError } from "../errors.ts";
import type {
  DirectRequest,
  DirectRequester,
  FetchedContent,
  FetchOptions,
  ReadableStore,
  ReferrerLister,
  TagLister,
  VerifiedManifestReader,
  WritableStore,
} from "../content/store.ts";
import { readVerified } from "../content/verify.ts";
import type { Descriptor } from "../oci/descriptor.ts";
import { type Digest, isDigest, parseDigest } from "../oci/digest.ts";
import { referrerDescriptorOf, subjectOf } from "../oci/artifact.ts";
import { parseManifest } from "../oci/manifest.ts";
import { isIndexMediaType, isManifestMediaType, Limits, MediaType } from "../oci/mediatypes.ts";
import { isLoopbackRegistry, parseReference, type Reference, registryEndpointHost } from "../oci/reference.ts";
import { Authorizer, type SchemeMemory } from "./auth/authorizer.ts";
import { type Credential, type CredentialHelperRunner, findCredential } from "./auth/credentials.ts";
import { TokenCache } from "./auth/token.ts";
import { type FetchedManifest, type OpenedBlob, RegistryClient, type UploadOptions } from "./client.ts";
import { type MirrorConfig, pullEndpoints, type PullEndpoint } from "./mirrors.ts";
import { errorFromResponse } from "./errors.ts";
import { type RetryChain, type RetryPolicy, sleep as defaultSleep, type Sleep } from "../retry.ts";
import { isConnectionRefused, readBounded, Transport } from "./transport.ts";
import { parseStrictJson } from "../oci/strict-json.ts";

/** Everything a registry repository needs from the outside world; the CLI builds it. */
export interface RegistryOptions {
  /** Environment: credentials (DOCKER_CONFIG, REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR, OCIBOOT_*), proxies. */
  env: Readonly<Record<string, string | undefined>>;
  homeDir: string;
  /** `--ca-file`: PEM CA certificates trusted besides the system ones. */
  caFile?: string;
  /** `--insecure`: skip TLS verification (a warning is printed through `warn`). */
  insecure?: boolean;
  /** `--plain-http`: plain HTTP also for registries that are not on loopback. */
  plainHttp?: boolean;
  /** Mirrors tried before the origin for pulls. */
  mirrors?: MirrorConfig;
  /** `--username` + `--password-stdin`. */
  username?: string;
  password?: string;
  /** `--authfile`: a docker config.json looked at first. */
  authFile?: string;
  /** `--debug` lines (redacted). */
  log?: (line: string) => void;
  /** Warnings for the user. */
  warn?: (line: string) => void;
  upload?: UploadOptions;
  /** Tests: fast retries. */
  retry?: Partial<RetryPolicy>;
  sleep?: Sleep;
  /** Tests: the clock for token expiry and Retry-After dates. */
  now?: () => number;
  connectionsPerHost?: number;
  runHelper?: CredentialHelperRunner;
}

/** Connections and tokens shared by every repository opened with the same options object. */
interface SharedState {
  transport: Transport;
  tokens: TokenCache;
  schemes: Map<string, Promise<"http" | "https">>;
  authorizers: Map<string, Authorizer>;
  schemeMemory: SchemeMemory;
}

const sharedStates = new WeakMap<RegistryOptions, SharedState>();

function sharedState(options: RegistryOptions): SharedState {
  let state = sharedStates.get(options);
  if (state === undefined) {
    const transportOptions: ConstructorParameters<typeof Transport>[0] = { env: options.env, userAgent: "ociboot" };
    if (options.caFile !== undefined) transportOptions.caFile = options.caFile;
    if (options.insecure !== undefined) transportOptions.insecure = options.insecure;
    if (options.log !== undefined) transportOptions.log = options.log;
    if (options.warn !== undefined) transportOptions.warn = options.warn;
    if (options.retry !== undefined) transportOptions.retry = options.retry;
    if (options.sleep !== undefined) transportOptions.sleep = options.sleep;
    if (options.now !== undefined) transportOptions.now = options.now;
    if (options.connectionsPerHost !== undefined) transportOptions.connectionsPerHost = options.connectionsPerHost;
    state = { transport: new Transport(transportOptions), tokens: new TokenCache(), schemes: new Map(), authorizers: new Map(), schemeMemory: new Map() };
    sharedStates.set(options, state);
  }
  return state;
}

/** Closes the idle connections of every repository opened with `options` (lets the process exit at once). */
export async function closeRegistryConnections(options: RegistryOptions): Promise<void> {
  await sharedStates.get(options)?.transport.close();
}

/**
 * Opens a repository of a registry as a store. Nothing is sent until the first operation;
 * connections, tokens and the plain-HTTP decision are shared among repositories opened with the
 * same `options` object.
 */
export function openRepository(reference: Pick<Reference, "registry" | "repository">, options: RegistryOptions): RegistryRepository {
  return new RegistryRepository(reference.registry, reference.repository, options);
}

/** Shortest wait before reading the referrers fallback tag back after writing it (see `#addToReferrersTag`). */
const REFERRERS_SETTLE_MS = 100;

/** A cache of small documents (manifests) by digest, so resolve-then-fetch costs one request. */
const MANIFEST_CACHE_ENTRIES = 64;

/**
 * A repository of a registry as a content store: resolve, fetch (mirrors first), exists, push,
 * tag, tag listing and referrers (API or the `sha256-<hex>` fallback tag).
 */
export class RegistryRepository implements ReadableStore, WritableStore, TagLister, ReferrerLister, DirectRequester, VerifiedManifestReader {
  readonly registry: string;
  readonly repository: string;
  readonly description: string;
  readonly #options: RegistryOptions;
  readonly #state: SharedState;
  readonly #manifests = new Map<string, { mediaType: string; bytes: Uint8Array }>();

  constructor(registry: string, repository: string, options: RegistryOptions) {
    this.registry = registry;
    this.repository = repository;
    this.description = `registry ${registry}/${repository}`;
    this.#options = options;
    this.#state = sharedState(options);
  }

  /** The protocol client of the origin registry. */
  async client(): Promise<RegistryClient> {
    return this.#clientFor({ registry: this.registry, repository: this.repository, insecure: false, mirror: false });
  }

  /** Resolves a tag or digest (or a full reference of this repository) to its manifest's descriptor; tries mirrors first. */
  async resolve(reference: string, options: { signal?: AbortSignal } = {}): Promise<Descriptor> {
    const target = this.#target(reference);
    const fetched = await this.#pull(`resolve ${this.registry}/${this.repository}:${target}`, isDigest(target), (client, endpoint) =>
      client.getManifest(endpoint.repository, target, options),
    );
    this.#remember(fetched);
    return fetched.descriptor;
  }

  /** Fetches a manifest (bytes, digest-checked) by tag or digest. */
  async fetchManifest(reference: string, options: { signal?: AbortSignal } = {}): Promise<FetchedManifest> {
    const target = this.#target(reference);
    const cached = isDigest(target) ? this.#manifests.get(target) : undefined;
    if (cached !== undefined) {
      return { descriptor: { mediaType: cached.mediaType, digest: target as Digest, size: cached.bytes.byteLength }, bytes: cached.bytes };
    }
    const fetched = await this.#pull(`fetch manifest ${this.registry}/${this.repository}:${target}`, isDigest(target), (client, endpoint) =>
      client.getManifest(endpoint.repository, target, options),
    );
    this.#remember(fetched);
    return fetched;
  }

  /**
   * A manifest's bytes as `fetchManifest` checked them: every cached or fetched manifest is named
   * by the digest its bytes hash to, so a match of digest and size needs no second hash.
   */
  async readVerifiedManifest(descriptor: Descriptor, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
    const { descriptor: fetched, bytes } = await this.fetchManifest(descriptor.digest, options);
    if (fetched.digest !== descriptor.digest || bytes.byteLength !== descriptor.size) {
      throw new OcibootError("INTEGRITY", `Cannot accept ${descriptor.digest}: received ${bytes.byteLength} of ${descriptor.size} bytes`, {
        details: { digest: descriptor.digest, expectedSize: descriptor.size, receivedSize: bytes.byteLength },
      });
    }
    return bytes;
  }

  /** Opens content: manifests from the digest-checked cache or registry, blobs as a stream (mirrors first). */
  async fetch(descriptor: Descriptor, options: FetchOptions = {}): Promise<FetchedContent> {
    if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) {
      const { bytes } = await this.fetchManifest(descriptor.digest, signalOnly(options));
      const offset = options.offset !== undefined && options.offset > 0 && options.offset <= bytes.byteLength ? options.offset : 0;
      return { stream: bytesStream(bytes.subarray(offset)), offset };
    }
    const opened = await this.openBlob(descriptor, options);
    const content: FetchedContent = { stream: blobStream(opened), offset: opened.offset };
    if (opened.release !== undefined) content.release = (chunk) => opened.release?.(chunk);
    if (opened.alignment !== undefined) content.alignment = opened.alignment;
    return content;
  }

  /**
   * Opens a blob as a raw body of Buffers (the fastest path: no Web Stream in between); tries
   * mirrors first. Bytes are unverified.
   */
  async openBlob(descriptor: Descriptor, options: FetchOptions = {}): Promise<OpenedBlob> {
    const blobOptions: { offset?: number; signal?: AbortSignal; retryChain?: RetryChain } = signalOnly(options);
    if (options.offset !== undefined) blobOptions.offset = options.offset;
    if (options.retryChain !== undefined) blobOptions.retryChain = options.retryChain;
    return this.#pull(`fetch blob ${this.registry}/${this.repository}@${descriptor.digest}`, true, (client, endpoint) =>
      client.openBlob(endpoint.repository, descriptor, blobOptions),
    );
  }

  /**
   * The URL of a manifest (by tag or digest) or a blob on the origin, with the headers that fetch
   * it (for onmetal-image's `url` command: a machine that boots from the URL needs no credentials
   * of its own). The content is checked to exist first, which also teaches the client the
   * registry's authentication scheme.
   */
  async directRequest(target: string | Descriptor, options: { signal?: AbortSignal } = {}): Promise<DirectRequest> {
    const client = await this.client();
    let url: URL;
    const headers: Record<string, string[]> = {};
    if (typeof target === "string") {
      const reference = this.#target(target);
      await this.resolve(reference, options);
      url = client.manifestUrl(this.repository, reference);
      headers["Accept"] = [MediaType.ociManifest];
    } else {
      if (!(await client.blobExists(this.repository, target.digest, options))) {
        throw new OcibootError("NOT_FOUND", `Cannot locate blob ${target.digest} in ${this.description}: the registry does not have it`);
      }
      url = client.blobUrl(this.repository, target.digest);
    }
    const authorization = await client.pullAuthorization(this.repository, options.signal);
    if (authorization !== undefined) headers["Authorization"] = [authorization];
    return { url: url.href, headers };
  }

  /** True when the origin registry holds the content (HEAD). */
  async exists(descriptor: Descriptor): Promise<boolean> {
    const client = await this.client();
    if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) {
      return client.manifestExists(this.repository, descriptor.digest);
    }
    return client.blobExists(this.repository, descriptor.digest);
  }

  /**
   * Pushes content: manifests and indexes by digest (verified, at most 4 MiB; a manifest with a
   * `subject` also updates the referrers fallback tag when the registry has no referrers API);
   * blobs streamed, skipped when already there.
   */
  async push(descriptor: Descriptor, content: ReadableStream<Uint8Array>, options: { signal?: AbortSignal; mountFrom?: string } = {}): Promise<void> {
    const client = await this.client();
    if (isManifestMediaType(descriptor.mediaType) || isIndexMediaType(descriptor.mediaType)) {
      const bytes = await readVerified(content, descriptor, Limits.manifestBytes);
      const result = await client.putManifest(this.repository, descriptor.digest, descriptor.mediaType, bytes, signalOnly(options));
      this.#manifests.set(descriptor.digest, { mediaType: descriptor.mediaType, bytes });
      const parsed = parseManifest(bytes, descriptor.mediaType);
      const subject = subjectOf(parsed);
      if (subject !== undefined && result.subject === undefined) {
        await this.#addToReferrersTag(client, subject, referrerDescriptorOf(descriptor, parsed));
      }
      return;
    }
    if (await client.blobExists(this.repository, descriptor.digest, signalOnly(options))) {
      await content.cancel().catch(() => undefined);
      return;
    }
    const uploadOptions: { signal?: AbortSignal; mountFrom?: string } = signalOnly(options);
    if (options.mountFrom !== undefined) uploadOptions.mountFrom = options.mountFrom;
    await client.uploadBlob(this.repository, descriptor, content, uploadOptions);
  }

  /** Mounts a blob from another repository of the same registry; false when the registry would not. */
  async mount(descriptor: Descriptor, fromRepository: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
    const client = await this.client();
    return client.mountBlob(this.repository, descriptor, fromRepository, options);
  }

  /** Points a tag at a manifest or index (the manifest is put again under the tag, as the protocol requires). */
  async tag(descriptor: Descriptor, reference: string): Promise<void> {
    const tag = this.#target(reference);
    if (isDigest(tag)) throw new OcibootError("USAGE", `Cannot tag ${descriptor.digest} in ${this.description}: "${reference}" is a digest, not a tag`);
    const { bytes } = await this.fetchManifest(descriptor.digest);
    const client = await this.client();
    await client.putManifest(this.repository, tag, descriptor.mediaType, bytes);
  }

  /** Every tag of the repository (origin registry, `Link` pagination). */
  async *tags(): AsyncIterable<string> {
    const client = await this.client();
    yield* client.listTags(this.repository);
  }

  /**
   * Manifests whose `subject` is `subject`: the referrers API where the registry has it, else the
   * OCI 1.1 fallback tag `<alg>-<hex>`. Filtered by `artifactType` when given.
   */
  async referrers(subject: Descriptor, artifactType?: string): Promise<Descriptor[]> {
    const client = await this.client();
    const fromApi = await client.referrersApi(this.repository, subject.digest, artifactType === undefined ? {} : { artifactType });
    const all = fromApi ?? (await this.#referrersFromTag(client, subject.digest)).manifests;
    return artifactType === undefined ? all : all.filter((descriptor) => descriptor.artifactType === artifactType);
  }

  async #referrersFromTag(client: RegistryClient, subject: Digest): Promise<{ manifests: Descriptor[]; index: Record<string, unknown> | undefined }> {
    const tag = fallbackTag(subject);
    let fetched: FetchedManifest;
    try {
      fetched = await client.getManifest(this.repository, tag);
    } catch (error) {
      if (error instanceof OcibootError && error.code === "NOT_FOUND") return { manifests: [], index: undefined };
      throw error;
    }
    const parsed = parseManifest(fetched.bytes, fetched.descriptor.mediaType);
    if (parsed.kind !== "index") {
      throw new OcibootError("REGISTRY", `Cannot list referrers of ${subject}: tag ${tag} is not an index`);
    }
    return { manifests: parsed.index.manifests, index: parseStrictJson(new TextDecoder().decode(fetched.bytes)) as Record<string, unknown> };
  }

  /**
   * Adds a referrer to the fallback tag index (read, modify, write). The registry offers no
   * conditional PUT, so a lost update is detected by reading back and retried a few times. The
   * read-back waits first: another writer that read the index before our write may still put its
   * own version without our entry, and that happens within about one read-modify-write of ours.
   */
  async #addToReferrersTag(client: RegistryClient, subject: Descriptor, referrer: Descriptor): Promise<void> {
    const tag = fallbackTag(subject.digest);
    const now = this.#options.now ?? Date.now;
    const sleep = this.#options.sleep ?? defaultSleep;
    for (let attempt = 0; attempt < 5; attempt++) {
      const started = now();
      const current = await this.#referrersFromTag(client, subject.digest);
      if (current.manifests.some((entry) => entry.digest === referrer.digest)) {
        if (attempt === 0) return;
      } else {
        const index = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...current.manifests, referrer] };
        const bytes = new TextEncoder().encode(JSON.stringify(index));
        await client.putManifest(this.repository, tag, MediaType.ociIndex, bytes);
      }
      await sleep(Math.max(REFERRERS_SETTLE_MS, 2 * (now() - started)) * (1 + Math.random()));
      const after = await this.#referrersFromTag(client, subject.digest);
      if (after.manifests.some((entry) => entry.digest === referrer.digest)) return;
    }
    throw new OcibootError("REGISTRY", `Cannot add ${referrer.digest} to the referrers of ${subject.digest}: the tag ${tag} kept changing`);
  }

  #target(reference: string): string {
    if (reference.includes("/")) {
      const parsed = parseReference(reference);
      if (parsed.registry !== this.registry || parsed.repository !== this.repository) {
        throw new OcibootError("USAGE", `Cannot use ${reference} in ${this.description}: it names another repository`);
      }
      return parsed.digest ?? parsed.tag ?? "latest";
    }
    if (reference.startsWith("@")) return reference.slice(1);
    return reference;
  }

  #remember(fetched: FetchedManifest): void {
    if (this.#manifests.size >= MANIFEST_CACHE_ENTRIES) {
      const oldest = this.#manifests.keys().next();
      if (!oldest.done) this.#manifests.delete(oldest.value);
    }
    this.#manifests.set(fetched.descriptor.digest, { mediaType: fetched.descriptor.mediaType, bytes: fetched.bytes });
  }

  /**
   * Runs a pull operation on each mirror, then the origin; the first success wins. `byDigest`:
   * the content is named by digest, which mirror-by-digest-only mirrors may serve.
   */
  async #pull<T>(what: string, byDigest: boolean, operation: (client: RegistryClient, endpoint: PullEndpoint) => Promise<T>): Promise<T> {
    const endpoints = pullEndpoints(this.#options.mirrors, this.registry, this.repository, { byDigest });
    let lastError: unknown;
    for (const endpoint of endpoints) {
      try {
        const client = await this.#clientFor(endpoint);
        return await operation(client, endpoint);
      } catch (error) {
        if (!endpoint.mirror || isInterrupt(error)) throw error;
        lastError = error;
        this.#options.log?.(`mirror ${endpoint.registry} failed to ${what}: ${(error as Error).message}; trying the next source`);
      }
    }
    throw lastError;
  }

  async #clientFor(endpoint: PullEndpoint): Promise<RegistryClient> {
    const scheme = await this.#scheme(endpoint);
    const url = new URL(`${scheme}://${registryEndpointHost(endpoint.registry)}`);
    const key = `${url.origin}\u0000${endpoint.mirror ? "" : endpoint.repository}`;
    let authorizer = this.#state.authorizers.get(key);
    if (authorizer === undefined) {
      // Mirrors get their own credentials (looked up by the mirror's host), never the origin's.
      const lookup = () => this.#credential(endpoint.registry, endpoint.repository);
      authorizer = new Authorizer({
        transport: this.#state.transport,
        registryUrl: url,
        tokens: this.#state.tokens,
        credential: lookup,
        memory: this.#state.schemeMemory,
      });
      this.#state.authorizers.set(key, authorizer);
    }
    const clientOptions: ConstructorParameters<typeof RegistryClient>[0] = {
      endpoint: { name: endpoint.registry, url },
      transport: this.#state.transport,
      authorizer,
    };
    if (this.#options.upload !== undefined) clientOptions.upload = this.#options.upload;
    return new RegistryClient(clientOptions);
  }

  async #credential(registry: string, repository: string): Promise<Credential | undefined> {
    const lookup: Parameters<typeof findCredential>[2] = { env: this.#options.env, homeDir: this.#options.homeDir };
    // Explicit --username applies to the registry of the command, not to its mirrors.
    if (registry === this.registry && this.#options.username !== undefined && this.#options.password !== undefined) {
      lookup.username = this.#options.username;
      lookup.password = this.#options.password;
    }
    if (this.#options.authFile !== undefined) lookup.authFile = this.#options.authFile;
    if (this.#options.runHelper !== undefined) lookup.runHelper = this.#options.runHelper;
    const found = await findCredential(registry, repository, lookup);
    this.#options.log?.(found ? `credentials for ${registry} from ${found.source}` : `no credentials for ${registry}`);
    return found?.credential;
  }

  /**
   * HTTPS, except: `--plain-http`, or a loopback or `insecure` mirror host, which is probed once —
   * plain HTTP unless the port turns out to speak TLS. Never a fallback from HTTPS to HTTP.
   */
  #scheme(endpoint: PullEndpoint): Promise<"http" | "https"> {
    if (this.#options.plainHttp) return Promise.resolve("http");
    if (!isLoopbackRegistry(endpoint.registry) && !endpoint.insecure) return Promise.resolve("https");
    const host = registryEndpointHost(endpoint.registry);
    let decided = this.#state.schemes.get(host);
    if (decided === undefined) {
      decided = probeScheme(this.#state.transport, host);
      this.#state.schemes.set(host, decided);
      decided.catch(() => this.#state.schemes.delete(host));
    }
    return decided;
  }
}

/**
 * Decides plain HTTP or TLS for a loopback registry: `GET http://host/v2/`; a TLS server answers
 * a plain request with 400 ("Client sent an HTTP request to an HTTPS server", Go's net/http) or
 * drops it, and then we use HTTPS.
 */
async function probeScheme(transport: Transport, host: string): Promise<"http" | "https"> {
  try {
    const response = await transport.request({ method: "GET", url: new URL(`http://${host}/v2/`), retry: false, followRedirects: false });
    if (response.status !== 400) {
      await response.body.dump().catch(() => undefined);
      return "http";
    }
    const { bytes } = await readBounded(response.body, 4096);
    return /https/i.test(bytes.toString("utf8")) ? "https" : "http";
  } catch (error) {
    // Refused (after the transport's retries): nothing listens there, TLS or not.
    if (!(error instanceof OcibootError) || error.code !== "NETWORK" || isConnectionRefused(error)) throw error;
    const response = await transport.request({ method: "GET", url: new URL(`https://${host}/v2/`), retry: false, followRedirects: false });
    await response.body.dump().catch(() => undefined);
    return "https";
  }
}

/** The OCI 1.1 referrers fallback tag of a subject: `<algorithm>-<hex>`. */
export function fallbackTag(subject: Digest): string {
  const { algorithm, hex } = parseDigest(subject);
  return `${algorithm}-${hex}`;
}

function isInterrupt(error: unknown): boolean {
  return (error instanceof OcibootError && error.code === "INTERRUPTED") || (error instanceof Error && error.name === "AbortError");
}

function signalOnly(options: { signal?: AbortSignal }): { signal?: AbortSignal } {
  return options.signal === undefined ? {} : { signal: options.signal };
}

function bytesStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.byteLength > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** A Web Stream over a raw blob body: chunks are handed on as they are (no copies). */
export function blobStream(opened: OpenedBlob): ReadableStream<Uint8Array> {
  const iterator = opened.body[Symbol.asyncIterator]();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const { done, value } = await iterator.next();
        if (done) controller.close();
        else controller.enqueue(value);
      } catch (error) {
        controller.error(error);
      }
    },
    async cancel() {
      opened.close();
      await iterator.return?.().catch(() => undefined);
    },
  });
}

/**
 * Checks that the credentials of `options` (or those found for the registry) are accepted:
 * `GET /v2/` through the full authentication flow, as `docker login` does.
 *
 * @throws OcibootError UNAUTHORIZED when the registry or its token server refuses them.
 */
export async function checkLogin(registry: string, options: RegistryOptions): Promise<void> {
  const repository = new RegistryRepository(registry, "", options);
  const client = await repository.client();
  const response = await client.ping();
  if (response.status === 200) {
    await response.body.dump().catch(() => undefined);
    return;
  }
  const error = await errorFromResponse(response, `log in to ${registry}`);
  throw new OcibootError(response.status === 401 ? "UNAUTHORIZED" : error.code, error.message, { cause: error });
}
