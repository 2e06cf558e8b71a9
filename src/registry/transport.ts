import { readFileSync } from "node:fs";
import { rootCertificates } from "node:tls";
import type { Dispatcher } from "undici";
import { OcibootError } from "../errors.ts";
import { DEFAULT_RETRY_POLICY, isRetryableStatus, parseRetryAfter, RetryChain, type RetryPolicy, sleep, type Sleep } from "../retry.ts";
import { Limits } from "../oci/mediatypes.ts";
import { BulkConnectionPool, bulkGet, type BulkGetResponse } from "./bulk-get.ts";
import { Agent, EnvHttpProxyAgent } from "./undici-core.ts";

/** Bodies a request may carry. Strings and byte arrays can be sent again (retries, redirects); streams only once. */
export type RequestBody = string | Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>;

export type HttpMethod = "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE";

/** One HTTP exchange as the registry client describes it. */
export interface HttpRequest {
  method: HttpMethod;
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  signal?: AbortSignal;
  /** Retry connection errors, 5xx and 429 (default: when the body can be sent again and the method is not PATCH). */
  retry?: boolean;
  /** The request chain this request belongs to, whose attempts it shares (default: a chain of its own). */
  retryChain?: RetryChain;
  /** Follow redirects (default true; never for bodies that cannot be sent again). */
  followRedirects?: boolean;
  /** Header names, besides `authorization`, that are credentials and must not cross origins. */
  sensitiveHeaders?: readonly string[];
  /** A large body read once (a blob): a GET on a direct connection reads it with `bulkGet`. */
  bulk?: boolean;
}

/** A response whose body is the raw undici body: an async iterable of Buffers. */
export interface HttpResponse {
  status: number;
  /** The URL that answered, after redirects. */
  url: URL;
  headers: ResponseHeaders;
  body: ResponseBody;
}

/** The raw body of a response. Iterate it, or `dump()` it to free the connection. */
export interface ResponseBody extends AsyncIterable<Buffer> {
  /** Discards the rest of the body (up to a small amount) so the connection can be reused. */
  dump(): Promise<void>;
  /** Closes the body and its connection at once. */
  destroy(error?: Error): void;
  /** Present on bulk bodies: hands a chunk's memory back for reuse once it has been consumed. */
  release?(chunk: Uint8Array): void;
  /** Present on bulk bodies whose chunks are whole page-aligned blocks (see BulkBody). */
  alignment?: number;
}

/** Lower-case response headers. */
export class ResponseHeaders {
  readonly #raw: Readonly<Record<string, string | string[] | undefined>>;

  constructor(raw: Readonly<Record<string, string | string[] | undefined>>) {
    this.#raw = raw;
  }

  /** The header's value; repeated headers are joined with ", " (RFC 9110 §5.3). */
  get(name: string): string | undefined {
    const value = this.#raw[name.toLowerCase()];
    return Array.isArray(value) ? value.join(", ") : value;
  }

  /** Every value of a repeated header, unjoined (WWW-Authenticate, Link). */
  getAll(name: string): string[] {
    const value = this.#raw[name.toLowerCase()];
    if (value === undefined) return [];
    return Array.isArray(value) ? [...value] : [value];
  }
}

/** How the transport reaches registries. */
export interface TransportOptions {
  /** Environment for proxy settings (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, lower case too). */
  env?: Readonly<Record<string, string | undefined>>;
  /** A PEM file of CA certificates trusted in addition to the system ones. */
  caFile?: string;
  /** Skip TLS certificate verification (dangerous; a warning is emitted). */
  insecure?: boolean;
  /** Connections per origin; further requests queue. */
  connectionsPerHost?: number;
  /** Debug log hook: one line per request, secrets and signed query strings redacted. */
  log?: (line: string) => void;
  /** Warnings that a user must see (for example `insecure`). */
  warn?: (line: string) => void;
  retry?: Partial<RetryPolicy>;
  /** Injectable for tests: waiting between retries. */
  sleep?: Sleep;
  /** Injectable for tests: a number in [0, 1) for jitter. */
  random?: () => number;
  /** Injectable for tests: the current time in milliseconds (Retry-After dates). */
  now?: () => number;
  /** Milliseconds to wait for response headers. */
  headersTimeoutMs?: number;
  /** Milliseconds without body data before a transfer fails. */
  bodyTimeoutMs?: number;
  userAgent?: string;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);
/** Query parameters that carry no secret and keep debug output useful. Everything else is redacted. */
const PUBLIC_QUERY_PARAMETERS = new Set(["n", "last", "digest", "mount", "from", "service", "scope", "artifactType"]);
const SYSTEM_CA_BUNDLES = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"];

/** True for `localhost`, 127.0.0.0/8 and `[::1]` hosts (with or without a port). */
export function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.toLowerCase();
  return LOOPBACK_HOSTS.has(bare) || /^127(?:\.\d{1,3}){3}$/.test(bare);
}

/**
 * HTTP for registries on top of undici: TLS and proxy settings, redirects followed by our own code
 * (so credentials never cross origins), bounded retries and a redacting debug log.
 */
export class Transport {
  readonly #options: TransportOptions;
  readonly #retry: RetryPolicy;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #now: () => number;
  /** `OCIBOOT_BULK_GET=0` sends every request through undici: a way around a bulk-GET problem in the field. */
  readonly #bulkEnabled: boolean;
  /** Connections the bulk GETs of this transport share (keep-alive), per origin. */
  #bulkConnections = new BulkConnectionPool();
  #direct: Dispatcher | undefined;
  #proxied: Dispatcher | undefined;
  #warned = false;

  constructor(options: TransportOptions = {}) {
    this.#options = options;
    this.#retry = { ...DEFAULT_RETRY_POLICY, ...options.retry };
    this.#sleep = options.sleep ?? sleep;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#bulkEnabled = options.env?.["OCIBOOT_BULK_GET"] !== "0";
  }

  /** The injected clock, shared with token expiry. */
  now(): number {
    return this.#now();
  }

  /** Logs a debug line (already redacted by the caller where needed). */
  debug(line: string): void {
    this.#options.log?.(line);
  }

  /**
   * Sends a request, following redirects and retrying transient failures. Returns any final
   * response, error statuses included: callers decide what a status means.
   */
  async request(request: HttpRequest): Promise<HttpResponse> {
    const replayable = isReplayable(request.body);
    const retry = (request.retry ?? request.method !== "PATCH") && replayable;
    const chain = request.retryChain ?? new RetryChain(this.#retry, { sleep: this.#sleep, random: this.#random });
    for (;;) {
      let response: HttpResponse;
      try {
        response = await this.#requestFollowingRedirects(request, replayable);
      } catch (error) {
        // A refused connection carried nothing to the server, so asking again is safe even where a
        // repeat is not (retry: false): a registry, or the network to it, may still be coming up.
        const mayRetry = retry || (replayable && isConnectionRefused(error));
        if (!mayRetry || !chain.shouldRetry(error, request.signal)) throw error;
        const delay = chain.delayMs();
        this.debug(`HTTP ${request.method} ${redactUrl(request.url)} failed (${describeError(error)}); retry ${chain.failures} in ${delay} ms`);
        await this.#sleep(delay, request.signal);
        continue;
      }
      if (!retry || !isRetryableStatus(response.status) || !chain.failed()) return response;
      const delay = chain.delayMs(parseRetryAfter(response.headers.get("retry-after"), this.#now()));
      await response.body.dump().catch(() => undefined);
      this.debug(`HTTP ${request.method} ${redactUrl(request.url)} answered ${response.status}; retry ${chain.failures} in ${delay} ms`);
      await this.#sleep(delay, request.signal);
    }
  }

  /** Closes idle connections; pending requests finish first. */
  async close(): Promise<void> {
    this.#bulkConnections.close();
    this.#bulkConnections = new BulkConnectionPool();
    await Promise.all([this.#direct?.close(), this.#proxied?.close()]);
    this.#direct = undefined;
    this.#proxied = undefined;
  }

  async #requestFollowingRedirects(request: HttpRequest, replayable: boolean): Promise<HttpResponse> {
    let url = request.url;
    let method = request.method;
    let body = request.body;
    const headers = { ...request.headers };
    const sensitive = ["authorization", ...(request.sensitiveHeaders ?? []).map((name) => name.toLowerCase())];
    const follow = request.followRedirects ?? true;
    for (let hop = 0; ; hop++) {
      const response = await this.#send({ method, url, headers, body, signal: request.signal, bulk: request.bulk === true });
      const location = response.headers.get("location");
      if (!follow || !REDIRECT_STATUSES.has(response.status) || location === undefined) return response;
      // A body that was streamed once cannot be sent to the new location.
      if (body !== undefined && !replayable && response.status !== 303) return response;
      await response.body.dump().catch(() => undefined);
      if (hop >= Limits.redirects) {
        throw new OcibootError("REGISTRY", `Cannot ${method} ${redactUrl(request.url)}: more than ${Limits.redirects} redirects`);
      }
      let next: URL;
      try {
        next = new URL(location, url);
      } catch (cause) {
        throw new OcibootError("REGISTRY", `Cannot follow redirect from ${redactUrl(url)}: invalid Location header`, { cause });
      }
      if (next.protocol !== "https:" && next.protocol !== "http:") {
        throw new OcibootError("REGISTRY", `Cannot follow redirect from ${redactUrl(url)}: unsupported scheme ${next.protocol}`);
      }
      if (url.protocol === "https:" && next.protocol === "http:") {
        throw new OcibootError("TLS", `Cannot follow redirect from ${redactUrl(url)} to ${redactUrl(next)}: refusing to leave HTTPS for plain HTTP`);
      }
      if (next.origin !== url.origin) {
        // Credentials belong to one origin: a blob storage host never sees them.
        for (const name of Object.keys(headers)) {
          if (sensitive.includes(name.toLowerCase())) delete headers[name];
        }
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === "POST")) {
        method = "GET";
        body = undefined;
        for (const name of Object.keys(headers)) {
          if (name.toLowerCase() === "content-length" || name.toLowerCase() === "content-type") delete headers[name];
        }
      }
      this.debug(`HTTP redirect ${response.status} to ${redactUrl(next)}${next.origin !== url.origin ? " (credentials dropped)" : ""}`);
      url = next;
    }
  }

  async #send(request: {
    method: HttpMethod;
    url: URL;
    headers: Record<string, string>;
    body: RequestBody | undefined;
    signal: AbortSignal | undefined;
    bulk?: boolean;
  }): Promise<HttpResponse> {
    const { method, url } = request;
    const started = this.#now();
    const headers: Record<string, string> = { "user-agent": this.#options.userAgent ?? "ociboot", ...request.headers };
    if (request.bulk === true && this.#bulkEnabled && method === "GET" && request.body === undefined && this.#isDirect(url)) {
      const response = await this.#sendBulk(url, headers, request.signal, started);
      if (response !== undefined) return response;
    }
    const options: Dispatcher.RequestOptions = {
      origin: url.origin,
      path: `${url.pathname}${url.search}`,
      method,
      headers,
      body: toUndiciBody(request.body),
      headersTimeout: this.#options.headersTimeoutMs ?? 60_000,
      bodyTimeout: this.#options.bodyTimeoutMs ?? 120_000,
      // Large socket reads keep the blob download path cheap.
      highWaterMark: 1024 * 1024,
    };
    if (request.signal !== undefined) options.signal = request.signal;
    let data: Dispatcher.ResponseData;
    try {
      data = await this.#dispatcherFor(url).request(options);
    } catch (error) {
      if (request.signal?.aborted) throw request.signal.reason ?? error;
      const mapped = mapConnectionError(error, `reach ${url.host} for ${method} ${redactPath(url)}`);
      this.debug(`HTTP ${method} ${redactUrl(url)} failed: ${describeError(error)}`);
      throw mapped;
    }
    this.debug(`HTTP ${method} ${redactUrl(url)} -> ${data.statusCode} (${this.#now() - started} ms)`);
    const raw = data.body;
    const body: ResponseBody = {
      [Symbol.asyncIterator]: () => iterateMappingErrors(raw, `read the answer of ${url.host} to ${method} ${redactPath(url)}`),
      dump: async () => {
        await raw.dump({ limit: 256 * 1024 });
      },
      destroy: (error?: Error) => {
        // undici reports a destroyed body as an "error" event; nobody listens any more.
        raw.on("error", () => undefined);
        raw.destroy(error);
      },
    };
    return { status: data.statusCode, url, headers: new ResponseHeaders(data.headers), body };
  }

  /** GET with the body read into large pooled blocks; undefined when the response needs undici after all. */
  async #sendBulk(url: URL, headers: Record<string, string>, signal: AbortSignal | undefined, started: number): Promise<HttpResponse | undefined> {
    const what = `GET ${redactUrl(url)}`;
    let response: BulkGetResponse | undefined;
    try {
      response = await bulkGet({
        url,
        headers,
        tls: this.#tlsOptions(),
        ...(signal !== undefined ? { signal } : {}),
        headersTimeoutMs: this.#options.headersTimeoutMs ?? 60_000,
        bodyTimeoutMs: this.#options.bodyTimeoutMs ?? 120_000,
        pool: this.#bulkConnections,
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      this.debug(`HTTP ${what} failed: ${describeError(error)}`);
      throw mapConnectionError(error, what);
    }
    if (response === undefined) {
      this.debug(`HTTP ${what}: body not framed by Content-Length; asking again through undici`);
      return undefined;
    }
    this.debug(`HTTP ${what} -> ${response.status} (${this.#now() - started} ms, bulk, ${this.#bulkConnections.opened} connection${this.#bulkConnections.opened === 1 ? "" : "s"} opened so far)`);
    const raw = response.body;
    const body: ResponseBody = {
      [Symbol.asyncIterator]: () => iterateMappingErrors(raw, what),
      dump: () => raw.dump(),
      destroy: (error?: Error) => raw.destroy(error),
      release: (chunk) => raw.release(chunk),
    };
    if (raw.alignment !== undefined) body.alignment = raw.alignment;
    return { status: response.status, url, headers: new ResponseHeaders(response.headers), body };
  }

  /** Loopback, or no proxy configured: the connection goes straight to the server. */
  #isDirect(url: URL): boolean {
    return proxySettings(this.#options.env ?? {}) === undefined || isLoopbackHost(url.hostname);
  }

  #dispatcherFor(url: URL): Dispatcher {
    if (this.#options.insecure && !this.#warned) {
      this.#warned = true;
      this.#options.warn?.("WARNING: TLS certificate verification is disabled (--insecure): anyone on the network path can read and change what is transferred.");
    }
    const proxy = proxySettings(this.#options.env ?? {});
    // Loopback never goes through a proxy, as in Go's net/http and curl.
    if (proxy === undefined || isLoopbackHost(url.hostname)) {
      this.#direct ??= new Agent({ ...this.#agentOptions(), connect: this.#tlsOptions() });
      return this.#direct;
    }
    this.#proxied ??= new EnvHttpProxyAgent({
      ...this.#agentOptions(),
      connect: this.#tlsOptions(),
      requestTls: this.#tlsOptions(),
      httpProxy: proxy.httpProxy,
      httpsProxy: proxy.httpsProxy,
      noProxy: proxy.noProxy,
    });
    return this.#proxied;
  }

  #agentOptions(): Agent.Options {
    return { connections: this.#options.connectionsPerHost ?? 8, keepAliveTimeout: 10_000, pipelining: 1 };
  }

  #tlsOptions(): { ca?: string[]; rejectUnauthorized: boolean } {
    if (this.#options.insecure) return { rejectUnauthorized: false };
    if (this.#options.caFile === undefined) return { ca: systemCertificates(), rejectUnauthorized: true };
    let extra: string;
    try {
      extra = readFileSync(this.#options.caFile, "utf8");
    } catch (cause) {
      throw new OcibootError("LOCAL_IO", `Cannot read CA file ${this.#options.caFile}: ${(cause as Error).message}`, { cause });
    }
    return { ca: [...systemCertificates(), extra], rejectUnauthorized: true };
  }
}

let systemCertificateCache: string[] | undefined;

/** Node's bundled roots plus the operating system's bundle, so enterprise CAs installed there work. */
function systemCertificates(): string[] {
  if (systemCertificateCache !== undefined) return systemCertificateCache;
  const certificates: string[] = [...rootCertificates];
  for (const path of SYSTEM_CA_BUNDLES) {
    try {
      certificates.push(readFileSync(path, "utf8"));
      break;
    } catch {
      // Not this distribution's path.
    }
  }
  systemCertificateCache = certificates;
  return certificates;
}

function proxySettings(
  env: Readonly<Record<string, string | undefined>>,
): { httpProxy: string; httpsProxy: string; noProxy: string } | undefined {
  const pick = (name: string) => env[name.toLowerCase()] ?? env[name] ?? "";
  const httpProxy = pick("HTTP_PROXY");
  const httpsProxy = pick("HTTPS_PROXY");
  if (httpProxy === "" && httpsProxy === "") return undefined;
  return { httpProxy, httpsProxy, noProxy: pick("NO_PROXY") };
}

function isReplayable(body: RequestBody | undefined): boolean {
  return body === undefined || typeof body === "string" || body instanceof Uint8Array;
}

/** True when the server's host refused the TCP connection: nothing listened on the port (yet). */
export function isConnectionRefused(error: unknown): boolean {
  return error instanceof OcibootError && error.code === "NETWORK" && errorCode(error.cause) === "ECONNREFUSED";
}

function toUndiciBody(body: RequestBody | undefined): string | Uint8Array | null {
  if (body === undefined) return null;
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  const iterable = body instanceof ReadableStream ? iterateStream(body) : body;
  // undici sends any async iterable; its types only name Node streams.
  return iterable as unknown as Uint8Array;
}

async function* iterateStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array> {
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  } finally {
    reader.releaseLock();
  }
}

async function* iterateMappingErrors(raw: AsyncIterable<unknown>, what: string): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of raw) yield chunk as Buffer;
  } catch (error) {
    if (error instanceof OcibootError) throw error;
    if (error instanceof Error && error.name === "AbortError") throw error;
    throw mapConnectionError(error, what);
  }
}

const TLS_ERROR_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** Maps an undici or socket error to NETWORK, TIMEOUT or TLS. */
export function mapConnectionError(error: unknown, what: string): OcibootError {
  if (error instanceof OcibootError) return error;
  const code = errorCode(error);
  const message = describeError(error);
  if (code === "UND_ERR_CONNECT_TIMEOUT" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT" || code === "ETIMEDOUT") {
    return new OcibootError("TIMEOUT", `Cannot ${what}: timed out (${message})`, { cause: error });
  }
  if (
    (code !== undefined && (TLS_ERROR_CODES.has(code) || code.startsWith("ERR_TLS_") || code.startsWith("ERR_SSL_"))) ||
    /certificate|tls handshake|ssl routines|wrong version number/i.test(message)
  ) {
    return new OcibootError("TLS", `Cannot ${what}: TLS failed (${message})`, { cause: error });
  }
  return new OcibootError("NETWORK", `Cannot ${what}: ${message}`, { cause: error });
}

function errorCode(error: unknown): string | undefined {
  // undici wraps socket errors: the cause often carries the telling code.
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    current = current.cause;
  }
  return codes.find((code) => code !== "UND_ERR_SOCKET" && code !== "UND_ERR_CONNECT") ?? codes[0];
}

const FRIENDLY_CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset by the server",
  ENOTFOUND: "host name not found",
  EAI_AGAIN: "host name lookup failed",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  EPIPE: "connection closed while sending",
  UND_ERR_SOCKET: "connection closed by the server",
};

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = errorCode(error);
    const friendly = code === undefined ? undefined : FRIENDLY_CODES[code];
    if (friendly !== undefined) return `${friendly} (${code})`;
  }
  return rawErrorText(error);
}

function rawErrorText(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const code = (error as { code?: unknown }).code;
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
  return `${typeof code === "string" ? `${code} ` : ""}${error.message}${cause}`;
}

/** Path and redacted query of a URL, for messages that name the host apart. */
function redactPath(url: URL): string {
  const redacted = new URL(redactUrl(url));
  return `${redacted.pathname}${redacted.search}`;
}

/** A URL fit for logs and messages: no user info, and query values redacted unless known harmless. */
export function redactUrl(url: URL): string {
  const copy = new URL(url.href);
  copy.username = "";
  copy.password = "";
  const names = [...new Set(copy.searchParams.keys())];
  for (const name of names) {
    if (!PUBLIC_QUERY_PARAMETERS.has(name)) copy.searchParams.set(name, "REDACTED");
  }
  return copy.href;
}

/** Reads at most `maxBytes` of a body, then closes it; returns what was read and whether it was cut. */
export async function readBounded(body: ResponseBody, maxBytes: number): Promise<{ bytes: Buffer; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    const room = maxBytes - length;
    if (chunk.byteLength > room) {
      if (room > 0) chunks.push(chunk.subarray(0, room));
      length = maxBytes;
      body.destroy();
      return { bytes: Buffer.concat(chunks, length), truncated: true };
    }
    chunks.push(chunk);
    length += chunk.byteLength;
  }
  return { bytes: Buffer.concat(chunks, length), truncated: false };
}
