import { X509Certificate, createPrivateKey, randomBytes, sign, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer as createHttpServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSelfSignedCertificate } from "./certificates.ts";
import { trackTemporaryDirectory, untrackTemporaryDirectory } from "./processes.ts";

/**
 * A Docker registry token server (https://distribution.github.io/distribution/spec/auth/token/):
 * the realm a registry with `auth: token` sends clients to. It signs ES256 JWTs whose header carries
 * the signing certificate in `x5c`, which is how distribution 2.8 finds the key in `rootcertbundle`.
 */

/** One entry of the JWT `access` claim. */
export interface AccessEntry {
  type: string;
  name: string;
  actions: string[];
}

export interface TokenPolicyQuestion {
  /** The authenticated user, or undefined for an anonymous token request. */
  username: string | undefined;
  type: string;
  name: string;
  requestedActions: string[];
}

/** Decides which of the requested actions a token grants. */
export type TokenPolicy = (question: TokenPolicyQuestion) => string[];

export interface TokenServerOptions {
  service: string;
  issuer: string;
  /** The one account that may authenticate (HTTP Basic on the token request). */
  credentials: { username: string; password: string };
  /**
   * Whether anonymous requests get `pull` (as Docker Hub grants for public repositories).
   * When false they still get a token, with no access, as Docker Hub does for private repositories;
   * the registry then refuses it with `insufficient_scope`. Ignored when `policy` is given.
   */
  allowAnonymousPull?: boolean;
  policy?: TokenPolicy;
  /** Serve the realm over HTTPS with this certificate (the registry's, when the registry speaks TLS). */
  tls?: { certificateFile: string; keyFile: string };
  /** `expires_in` of issued tokens and their `exp` claim. Default 300 s. */
  tokenLifetimeSeconds?: number;
  /** Where the signing key and certificate are written; a temporary directory (removed on stop) otherwise. */
  directory?: string;
}

/** What a client sent to the token endpoint, so tests can assert on client behaviour. */
export interface TokenRequestRecord {
  method: string;
  path: string;
  /** The raw query string without `?`, e.g. to assert on `account` or repeated `scope` parameters. */
  query: string;
  service: string | null;
  /** Scopes as requested, one per entry (space-separated scopes in one parameter are split). */
  scopes: string[];
  hadAuthorization: boolean;
  /** The username presented with Basic credentials, whether or not the password was right. */
  username: string | undefined;
  status: number;
  granted: AccessEntry[];
}

export interface TokenServer {
  /** Base URL, e.g. `http://127.0.0.1:PORT`. */
  url: string;
  /** The token endpoint that goes into the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** PEM certificate of the signing key: the registry's `rootcertbundle`. */
  signingCertificateFile: string;
  /** Requests received so far, oldest first. */
  requests: TokenRequestRecord[];
  /** Signs a token directly, e.g. to hand a client a token for the wrong repository. */
  issueToken(access: AccessEntry[], subject?: string): string;
  stop(): Promise<void>;
}

const KNOWN_ACTIONS = new Set(["pull", "push", "delete", "*"]);

/** Starts a token server on a free loopback port. */
export async function startTokenServer(options: TokenServerOptions): Promise<TokenServer> {
  let ownedDirectory: string | undefined;
  let directory = options.directory;
  if (directory === undefined) {
    ownedDirectory = await mkdtemp(join(tmpdir(), "ociboot-token-server-"));
    trackTemporaryDirectory(ownedDirectory);
    directory = ownedDirectory;
  }
  const signer = await createSelfSignedCertificate(directory, "ociboot test token signer");
  const signingKey = createPrivateKey(await readFile(signer.keyFile));
  const certificateDer = new X509Certificate(await readFile(signer.certificateFile)).raw;
  const lifetimeSeconds = options.tokenLifetimeSeconds ?? 300;
  const policy = options.policy ?? defaultPolicy(options.allowAnonymousPull ?? false);

  const requests: TokenRequestRecord[] = [];
  const issueToken = (access: AccessEntry[], subject = ""): string =>
    signJwt(signingKey, certificateDer, {
      iss: options.issuer,
      sub: subject,
      aud: options.service,
      access,
      lifetimeSeconds,
    });

  const handle = (request: IncomingMessage, response: ServerResponse): void => {
    const requestUrl = new URL(request.url ?? "/", "http://token-server");
    const authorization = request.headers.authorization;
    const scopes = requestUrl.searchParams.getAll("scope").flatMap((scope) => scope.split(" ")).filter((scope) => scope !== "");
    const record: TokenRequestRecord = {
      method: request.method ?? "",
      path: requestUrl.pathname,
      query: requestUrl.search.replace(/^\?/, ""),
      service: requestUrl.searchParams.get("service"),
      scopes,
      hadAuthorization: authorization !== undefined,
      username: undefined,
      status: 0,
      granted: [],
    };
    requests.push(record);
    const reply = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status;
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(JSON.stringify(body));
    };

    if (request.method !== "GET" || requestUrl.pathname !== "/token") {
      reply(404, { errors: [{ code: "NOT_FOUND", message: "only GET /token is served here" }] });
      return;
    }
    let username: string | undefined;
    if (authorization !== undefined) {
      const presented = parseBasicAuthorization(authorization);
      record.username = presented?.username;
      if (presented === undefined || !credentialsMatch(presented, options.credentials)) {
        reply(
          401,
          { errors: [{ code: "UNAUTHORIZED", message: "incorrect username or password" }] },
          { "www-authenticate": 'Basic realm="ociboot test token server"' },
        );
        return;
      }
      username = presented.username;
    }
    const granted: AccessEntry[] = [];
    for (const scope of scopes) {
      const parsed = parseScope(scope);
      if (parsed === undefined) continue;
      const actions = policy({ username, type: parsed.type, name: parsed.name, requestedActions: parsed.actions });
      if (actions.length > 0) granted.push({ type: parsed.type, name: parsed.name, actions });
    }
    record.granted = granted;
    const token = issueToken(granted, username ?? "");
    reply(200, { token, access_token: token, expires_in: lifetimeSeconds, issued_at: new Date().toISOString() });
  };

  const server: Server =
    options.tls === undefined
      ? createHttpServer(handle)
      : createHttpsServer({ cert: await readFile(options.tls.certificateFile), key: await readFile(options.tls.keyFile) }, handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${port}`;

  return {
    url,
    realm: `${url}/token`,
    service: options.service,
    issuer: options.issuer,
    signingCertificateFile: signer.certificateFile,
    requests,
    issueToken,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownedDirectory !== undefined) {
        await rm(ownedDirectory, { recursive: true, force: true });
        untrackTemporaryDirectory(ownedDirectory);
      }
    },
  };
}

function defaultPolicy(allowAnonymousPull: boolean): TokenPolicy {
  return ({ username, type, requestedActions }) => {
    if (type !== "repository") return [];
    const known = requestedActions.filter((action) => KNOWN_ACTIONS.has(action));
    if (username !== undefined) return known;
    return allowAnonymousPull ? known.filter((action) => action === "pull") : [];
  };
}

/** Splits `repository:NAME:pull,push`. The name sits between the first and the last colon. */
function parseScope(scope: string): { type: string; name: string; actions: string[] } | undefined {
  const first = scope.indexOf(":");
  const last = scope.lastIndexOf(":");
  if (first <= 0 || last === first) return undefined;
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(",").filter((action) => action !== ""),
  };
}

function parseBasicAuthorization(header: string): { username: string; password: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header);
  if (match?.[1] === undefined) return undefined;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

function credentialsMatch(presented: { username: string; password: string }, expected: { username: string; password: string }): boolean {
  const same = (a: string, b: string): boolean => {
    const left = Buffer.from(a);
    const right = Buffer.from(b);
    return left.length === right.length && timingSafeEqual(left, right);
  };
  return same(presented.username, expected.username) && same(presented.password, expected.password);
}

interface ClaimInput {
  iss: string;
  sub: string;
  aud: string;
  access: AccessEntry[];
  lifetimeSeconds: number;
}

function signJwt(key: KeyObject, certificateDer: Buffer, claims: ClaimInput): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: "JWT", alg: "ES256", x5c: [certificateDer.toString("base64")] };
  const payload = {
    iss: claims.iss,
    sub: claims.sub,
    aud: claims.aud,
    // A little backdating, because the registry compares nbf with its own clock, to the second.
    nbf: now - 5,
    iat: now,
    exp: now + claims.lifetimeSeconds,
    jti: randomBytes(12).toString("hex"),
    access: claims.access,
  };
  const signingInput = `${base64Url(JSON.stringify(header))}.${base64Url(JSON.stringify(payload))}`;
  // JWS ES256 wants the raw r||s signature (RFC 7518 §3.4), not DER.
  const signature = sign("sha256", Buffer.from(signingInput), { key, dsaEncoding: "ieee-p1363" });
  return `${signingInput}.${signature.toString("base64url")}`;
}

function base64Url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}
