import { OcibootError } from "../../errors.ts";
import { Limits } from "../../oci/mediatypes.ts";
import { errorFromResponse } from "../errors.ts";
import { readBounded, redactUrl, type Transport } from "../transport.ts";
import type { Challenge } from "./challenge.ts";
import type { Credential } from "./credentials.ts";
import { checkTokenRealm, type HostResolver } from "./realm.ts";
import { parseStrictJson } from "../../oci/strict-json.ts";

/** A bearer token and when it stops being usable (epoch milliseconds). */
export interface BearerToken {
  token: string;
  expiresAt: number;
}

/** Tokens cached per registry, credential and scope set. */
export class TokenCache {
  readonly #tokens = new Map<string, BearerToken>();

  /** The cached token for a key, unless it expired by `now`. */
  get(key: string, now: number): BearerToken | undefined {
    const token = this.#tokens.get(key);
    if (token === undefined) return undefined;
    if (token.expiresAt <= now) {
      this.#tokens.delete(key);
      return undefined;
    }
    return token;
  }

  set(key: string, token: BearerToken): void {
    this.#tokens.set(key, token);
  }

  delete(key: string): void {
    this.#tokens.delete(key);
  }
}

/** Default lifetime when a token server names none (distribution token spec: 60 s). */
const DEFAULT_EXPIRES_IN_SECONDS = 60;
/** Renew this early, so a token does not expire between our check and the registry's. */
const EXPIRY_MARGIN_MS = 10_000;

/** Key of a token in the cache: registry, who asks, and the sorted scopes. */
export function tokenCacheKey(registry: string, credential: Credential | undefined, scopes: readonly string[]): string {
  const who =
    credential === undefined ? "anonymous" : credential.kind === "basic" ? `basic:${credential.username}` : credential.kind === "identity-token" ? `identity:${credential.username}` : "bearer";
  return `${registry}\u0000${who}\u0000${[...new Set(scopes)].sort().join(" ")}`;
}

/**
 * Fetches a bearer token from a challenge's realm (distribution token spec): `service` and each
 * `scope` URL-encoded as query parameters, Basic credentials when we have them, an OAuth2
 * refresh-token POST for identity tokens. Accepts `token` or `access_token`, honours
 * `expires_in`, reads at most 1 MiB. A plain-http realm for an https registry is refused, and so
 * is a realm host that {@link checkTokenRealm} refuses; redirects are not followed.
 */
export async function fetchBearerToken(options: {
  transport: Transport;
  challenge: Challenge;
  registryUrl: URL;
  scopes: readonly string[];
  credential: Credential | undefined;
  signal?: AbortSignal;
  resolveHost?: HostResolver;
}): Promise<BearerToken> {
  const { transport, challenge, registryUrl, scopes, credential } = options;
  const registryName = registryUrl.host;
  const realmText = challenge.parameters["realm"];
  if (!realmText) {
    throw new OcibootError("UNAUTHORIZED", `Cannot authenticate to ${registryName}: the Bearer challenge names no realm`);
  }
  let realm: URL;
  try {
    realm = new URL(realmText);
  } catch (cause) {
    throw new OcibootError("UNAUTHORIZED", `Cannot authenticate to ${registryName}: the token realm "${realmText.slice(0, 100)}" is not a URL`, { cause });
  }
  if (realm.protocol !== "https:" && realm.protocol !== "http:") {
    throw new OcibootError("UNAUTHORIZED", `Cannot authenticate to ${registryName}: the token realm uses ${realm.protocol}`);
  }
  if (realm.protocol === "http:" && registryUrl.protocol === "https:") {
    throw new OcibootError(
      "UNAUTHORIZED",
      `Cannot authenticate to ${registryName}: the token realm ${redactUrl(realm)} is plain HTTP for an HTTPS registry; refusing to send credentials or get a token over it`,
    );
  }
  await checkTokenRealm(realm, registryUrl, options.resolveHost);
  const service = challenge.parameters["service"];
  const allScopes = [...new Set(scopes)];
  let response;
  if (credential?.kind === "identity-token") {
    const form = new URLSearchParams();
    form.set("grant_type", "refresh_token");
    form.set("refresh_token", credential.identityToken);
    form.set("client_id", "ociboot");
    if (service !== undefined) form.set("service", service);
    if (allScopes.length > 0) form.set("scope", allScopes.join(" "));
    const request = {
      method: "POST" as const,
      url: realm,
      headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: form.toString(),
      followRedirects: false,
    };
    response = await transport.request(options.signal ? { ...request, signal: options.signal } : request);
  } else {
    const url = new URL(realm.href);
    if (service !== undefined) url.searchParams.set("service", service);
    for (const scope of allScopes) url.searchParams.append("scope", scope);
    const headers: Record<string, string> = { accept: "application/json" };
    if (credential?.kind === "basic") headers["authorization"] = basicAuthorization(credential.username, credential.password);
    const request = { method: "GET" as const, url, headers, followRedirects: false };
    response = await transport.request(options.signal ? { ...request, signal: options.signal } : request);
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body.dump().catch(() => undefined);
    // A redirect would carry the login (or the refresh token in a re-sent POST) to a host no rule
    // above has judged; token servers have no reason to redirect (docs/token-realm.md).
    throw new OcibootError(
      "UNAUTHORIZED",
      `Cannot get a token for ${registryName}: the token realm ${redactUrl(realm)} answered ${response.status} (a redirect); ociboot does not follow redirects for token requests`,
    );
  }
  if (response.status !== 200) {
    const error = await errorFromResponse(response, `get a token for ${registryName} from ${realm.origin}`);
    if (response.status === 401 || response.status === 403) {
      throw new OcibootError(response.status === 401 ? "UNAUTHORIZED" : "DENIED", error.message, { cause: error });
    }
    throw error;
  }
  const { bytes, truncated } = await readBounded(response.body, Limits.tokenResponseBytes);
  if (truncated) {
    throw new OcibootError("REGISTRY", `Cannot get a token for ${registryName}: the token response is larger than ${Limits.tokenResponseBytes} bytes`);
  }
  let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    parsed = parseStrictJson(bytes.toString("utf8")) as typeof parsed;
  } catch (cause) {
    throw new OcibootError("REGISTRY", `Cannot get a token for ${registryName}: the token response is not JSON`, { cause });
  }
  const token = typeof parsed.token === "string" && parsed.token !== "" ? parsed.token : parsed.access_token;
  if (typeof token !== "string" || token === "") {
    throw new OcibootError("REGISTRY", `Cannot get a token for ${registryName}: the token response has neither "token" nor "access_token"`);
  }
  const expiresIn =
    typeof parsed.expires_in === "number" && Number.isFinite(parsed.expires_in) && parsed.expires_in > 0
      ? parsed.expires_in
      : DEFAULT_EXPIRES_IN_SECONDS;
  const lifetime = expiresIn * 1000;
  return { token, expiresAt: transport.now() + Math.max(lifetime / 2, lifetime - EXPIRY_MARGIN_MS) };
}

/** `Basic base64(user:password)` (RFC 7617). */
export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, "utf8").toString("base64")}`;
}
