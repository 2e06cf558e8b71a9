import type { HttpRequest, HttpResponse, Transport } from "../transport.ts";
import { type Challenge, parseWwwAuthenticate } from "./challenge.ts";
import type { Credential } from "./credentials.ts";
import { basicAuthorization, fetchBearerToken, type TokenCache, tokenCacheKey } from "./token.ts";

/** Loads the credential for the registry when first needed (files and helpers are read lazily). */
export type CredentialLoader = () => Promise<Credential | undefined>;

/** What an origin asked for last time, shared by every Authorizer of that origin. */
export interface LearnedScheme {
  scheme: "basic" | "bearer";
  challenge?: Challenge;
}

/** Learnt schemes by origin (`https://host:port`), so a new repository costs no extra 401. */
export type SchemeMemory = Map<string, LearnedScheme>;

/**
 * Adds authentication to requests for one registry origin. Learns the scheme from the first 401
 * challenge, then authenticates later requests up front (Basic, or a cached Bearer token per scope
 * set, fetched from the remembered realm). After a 401 it retries once with fresh authentication,
 * never more. Authorization is only ever attached to URLs of the registry's own origin.
 */
export class Authorizer {
  readonly #transport: Transport;
  readonly #registryUrl: URL;
  readonly #tokens: TokenCache;
  readonly #loadCredential: CredentialLoader;
  readonly #memory: SchemeMemory;
  #credential: Promise<Credential | undefined> | undefined;

  constructor(options: { transport: Transport; registryUrl: URL; tokens: TokenCache; credential: CredentialLoader; memory?: SchemeMemory }) {
    this.#transport = options.transport;
    this.#registryUrl = options.registryUrl;
    this.#tokens = options.tokens;
    this.#loadCredential = options.credential;
    this.#memory = options.memory ?? new Map();
  }

  /** The origin this authorizer speaks for. */
  get registryUrl(): URL {
    return this.#registryUrl;
  }

  /** The credential in use, if any (loaded on first call). */
  credential(): Promise<Credential | undefined> {
    this.#credential ??= this.#loadCredential();
    return this.#credential;
  }

  /** The `Authorization` value this authorizer would send now for `scopes`, fetching a token if the scheme is known. */
  async authorization(scopes: readonly string[], signal?: AbortSignal): Promise<string | undefined> {
    const credential = await this.credential();
    if (credential?.kind === "bearer") return `Bearer ${credential.token}`;
    const learned = this.#memory.get(this.#registryUrl.origin);
    if (learned?.scheme === "basic" && credential?.kind === "basic") return basicAuthorization(credential.username, credential.password);
    if (learned?.scheme === "bearer" && learned.challenge !== undefined) {
      return `Bearer ${await this.#token(learned.challenge, scopes, credential, false, signal)}`;
    }
    return undefined;
  }

  /**
   * Sends a request with authentication for `scopes` (`repository:NAME:pull` …). A request whose
   * body is a stream cannot be repeated: its 401 is returned as is (the scheme is learnt, so the
   * caller may retry with a fresh stream).
   */
  async send(request: HttpRequest, scopes: readonly string[]): Promise<HttpResponse> {
    const sameOrigin = request.url.origin === this.#registryUrl.origin;
    const first = await this.#transport.request(await this.#withAuthorization(request, scopes, sameOrigin));
    if (first.status !== 401 || !sameOrigin) return first;
    const credential = await this.credential();
    if (credential?.kind === "bearer") return first;
    const challenges = parseWwwAuthenticate(first.headers.getAll("www-authenticate"));
    const bearer = challenges.find((challenge) => challenge.scheme === "bearer");
    const basic = challenges.find((challenge) => challenge.scheme === "basic");
    let authorization: string;
    if (bearer !== undefined) {
      const challengeScopes = (bearer.parameters["scope"] ?? "").split(" ").filter((scope) => scope !== "");
      const wanted = [...new Set([...scopes, ...challengeScopes])];
      this.#memory.set(this.#registryUrl.origin, { scheme: "bearer", challenge: bearer });
      try {
        authorization = `Bearer ${await this.#token(bearer, wanted, credential, true, request.signal)}`;
      } catch (error) {
        await first.body.dump().catch(() => undefined);
        throw error;
      }
      if (wanted.length !== scopes.length) {
        // Remember the wider token under the scopes we were asked for, too.
        const key = tokenCacheKey(this.#registryUrl.host, credential, scopes);
        const wide = this.#tokens.get(tokenCacheKey(this.#registryUrl.host, credential, wanted), this.#transport.now());
        if (wide !== undefined) this.#tokens.set(key, wide);
      }
    } else if (basic !== undefined && credential?.kind === "basic") {
      this.#memory.set(this.#registryUrl.origin, { scheme: "basic" });
      authorization = basicAuthorization(credential.username, credential.password);
    } else {
      return first;
    }
    if (!isReplayable(request.body)) return first;
    await first.body.dump().catch(() => undefined);
    const second = await this.#transport.request({ ...request, headers: { ...request.headers, authorization } });
    if (second.status === 401) this.#forgetTokens(scopes, credential);
    return second;
  }

  async #withAuthorization(request: HttpRequest, scopes: readonly string[], sameOrigin: boolean): Promise<HttpRequest> {
    if (!sameOrigin) return request;
    const authorization = await this.authorization(scopes, request.signal);
    if (authorization === undefined) return request;
    return { ...request, headers: { ...request.headers, authorization } };
  }

  async #token(
    challenge: Challenge,
    scopes: readonly string[],
    credential: Credential | undefined,
    fresh: boolean,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const key = tokenCacheKey(this.#registryUrl.host, credential, scopes);
    if (!fresh) {
      const cached = this.#tokens.get(key, this.#transport.now());
      if (cached !== undefined) return cached.token;
    }
    const options = { transport: this.#transport, challenge, registryUrl: this.#registryUrl, scopes, credential };
    const token = await fetchBearerToken(signal ? { ...options, signal } : options);
    this.#tokens.set(key, token);
    return token.token;
  }

  #forgetTokens(scopes: readonly string[], credential: Credential | undefined): void {
    this.#tokens.delete(tokenCacheKey(this.#registryUrl.host, credential, scopes));
  }
}

function isReplayable(body: HttpRequest["body"]): boolean {
  return body === undefined || typeof body === "string" || body instanceof Uint8Array;
}

/** Builds the scope string of the distribution token spec for a repository and actions. */
export function repositoryScope(repository: string, actions: readonly ("pull" | "push")[]): string {
  return `repository:${repository}:${actions.join(",")}`;
}

/** Explains a final 401 or 403, adding whether we had credentials at all. */
export function authenticationHint(credential: Credential | undefined, registry: string): string {
  return credential === undefined
    ? ` (no credentials found for ${registry}: run "ociboot login ${registry}" or set up docker/podman credentials)`
    : "";
}
