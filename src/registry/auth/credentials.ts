import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { OcibootError } from "../../errors.ts";

/** What we can authenticate with. */
export type Credential =
  | { kind: "basic"; username: string; password: string }
  /** An OAuth2 refresh token (docker's `identitytoken`), exchanged at the token realm. */
  | { kind: "identity-token"; username: string; identityToken: string }
  /** A bearer token sent to the registry as is (docker's `registrytoken`, or a CI token). */
  | { kind: "bearer"; token: string };

/** A credential and where it was found (for `--debug` and messages; never the secret). */
export interface FoundCredential {
  credential: Credential;
  source: string;
}

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; resolves stdout. */
export type CredentialHelperRunner = (helper: string, action: "get" | "store" | "erase", input: string) => Promise<string>;

/** Where credentials are looked up; everything from the outside world is passed in. */
export interface CredentialOptions {
  env: Readonly<Record<string, string | undefined>>;
  homeDir: string;
  /** `--username` with `--password-stdin`: used for every registry of the command. */
  username?: string;
  password?: string;
  /** An explicit auth file (docker config format), looked at before all others. */
  authFile?: string;
  /** Injectable for tests; by default runs the helper binary from PATH. */
  runHelper?: CredentialHelperRunner;
}

/**
 * Environment variables for CI: `OCIBOOT_REGISTRY_HOST` names the registries (comma-separated
 * host[:port]) that `OCIBOOT_USERNAME` + `OCIBOOT_PASSWORD`, or `OCIBOOT_REGISTRY_TOKEN` (a bearer
 * token), are for. Without that host list they are not used, so a CI secret never reaches a
 * registry it was not meant for.
 */
export const CREDENTIAL_ENV = {
  host: "OCIBOOT_REGISTRY_HOST",
  username: "OCIBOOT_USERNAME",
  password: "OCIBOOT_PASSWORD",
  token: "OCIBOOT_REGISTRY_TOKEN",
} as const;

const DOCKER_HUB_ALIASES = new Set(["docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"]);
/** The key docker itself uses for Docker Hub in config.json. */
export const DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/";

/**
 * Normalises a registry name or a config.json key to `host[:port]`: lower case, no scheme, no
 * path (`https://index.docker.io/v1/`, `http://host:5000`, `host:5000/v2/` → `docker.io`,
 * `host:5000`, `host:5000`). Comparison is exact afterwards: never by suffix or prefix.
 */
export function normaliseRegistryHost(key: string): string {
  let host = key.trim().toLowerCase();
  host = host.replace(/^[a-z][a-z0-9+.-]*:\/\//, "");
  const slash = host.indexOf("/");
  if (slash >= 0) host = host.slice(0, slash);
  if (DOCKER_HUB_ALIASES.has(host)) return "docker.io";
  return host;
}

/** Path of docker's config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: Readonly<Record<string, string | undefined>>, homeDir: string): string {
  const directory = env["DOCKER_CONFIG"];
  return directory ? join(directory, "config.json") : join(homeDir, ".docker", "config.json");
}

/** The auth files looked at, in order, with where each came from. */
export function authFilePaths(options: CredentialOptions): string[] {
  const paths: string[] = [];
  if (options.authFile) paths.push(options.authFile);
  const registryAuthFile = options.env["REGISTRY_AUTH_FILE"];
  if (registryAuthFile) paths.push(registryAuthFile);
  paths.push(dockerConfigPath(options.env, options.homeDir));
  const runtimeDir = options.env["XDG_RUNTIME_DIR"];
  if (runtimeDir) paths.push(join(runtimeDir, "containers", "auth.json"));
  paths.push(join(options.env["XDG_CONFIG_HOME"] || join(options.homeDir, ".config"), "containers", "auth.json"));
  return [...new Set(paths)];
}

/**
 * Finds the credential for a registry (`host[:port]`) and, for repository-scoped keys of
 * containers' auth.json, a repository. Order: explicit username/password, CI environment,
 * then the auth files (`--authfile`, `$REGISTRY_AUTH_FILE`, docker config.json, containers
 * auth.json); within a file `credHelpers`, then `credsStore`, then `auths`.
 */
export async function findCredential(
  registry: string,
  repository: string | undefined,
  options: CredentialOptions,
): Promise<FoundCredential | undefined> {
  const host = normaliseRegistryHost(registry);
  if (options.username !== undefined && options.password !== undefined) {
    return { credential: { kind: "basic", username: options.username, password: options.password }, source: "--username" };
  }
  const fromEnv = credentialFromEnv(host, options.env);
  if (fromEnv) return fromEnv;
  for (const path of authFilePaths(options)) {
    const config = await readAuthFile(path);
    if (config === undefined) continue;
    const found = await credentialFromConfig(config, path, host, repository, options);
    if (found) return found;
  }
  return undefined;
}

function credentialFromEnv(host: string, env: Readonly<Record<string, string | undefined>>): FoundCredential | undefined {
  const hosts = (env[CREDENTIAL_ENV.host] ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map(normaliseRegistryHost);
  if (!hosts.includes(host)) return undefined;
  const token = env[CREDENTIAL_ENV.token];
  if (token) return { credential: { kind: "bearer", token }, source: `$${CREDENTIAL_ENV.token}` };
  const username = env[CREDENTIAL_ENV.username];
  const password = env[CREDENTIAL_ENV.password];
  if (username && password !== undefined) {
    return { credential: { kind: "basic", username, password }, source: `$${CREDENTIAL_ENV.username}` };
  }
  return undefined;
}

/** The parts of docker's config.json (and containers' auth.json) that hold credentials. */
export interface AuthConfigFile {
  auths?: Record<string, AuthEntry>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
  [key: string]: unknown;
}

export interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  [key: string]: unknown;
}

async function readAuthFile(path: string): Promise<AuthConfigFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT" || (error as NodeJS.ErrnoException).code === "ENOTDIR") return undefined;
    throw new OcibootError("LOCAL_IO", `Cannot read credentials from ${path}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not a JSON object");
    return parsed as AuthConfigFile;
  } catch (cause) {
    throw new OcibootError("LOCAL_IO", `Cannot read credentials from ${path}: ${(cause as Error).message}`, { cause });
  }
}

async function credentialFromConfig(
  config: AuthConfigFile,
  path: string,
  host: string,
  repository: string | undefined,
  options: CredentialOptions,
): Promise<FoundCredential | undefined> {
  const helpers = isStringRecord(config.credHelpers) ? config.credHelpers : {};
  const helperEntry = Object.entries(helpers).find(([key]) => normaliseRegistryHost(key) === host && !hasRepositoryPath(key));
  const helper = helperEntry?.[1] ?? (typeof config.credsStore === "string" && config.credsStore !== "" ? config.credsStore : undefined);
  if (helper !== undefined) {
    const credential = await credentialFromHelper(helper, host, options);
    if (credential) return { credential, source: `docker-credential-${helper} (${path})` };
    // A credsStore that knows nothing of this host still leaves auths to look at, as docker does for helpers that fail.
    if (helperEntry !== undefined) return undefined;
  }
  const auths = typeof config.auths === "object" && config.auths !== null ? config.auths : {};
  const entry = pickAuthEntry(auths, host, repository);
  if (entry === undefined) return undefined;
  const credential = credentialFromEntry(entry[1], path);
  return credential ? { credential, source: `${path} (${entry[0]})` } : undefined;
}

/** Repository-scoped keys (`host/namespace`) win over the bare host, longest first, as in containers-auth.json(5). */
function pickAuthEntry(
  auths: Record<string, AuthEntry>,
  host: string,
  repository: string | undefined,
): [string, AuthEntry] | undefined {
  let best: [string, AuthEntry] | undefined;
  let bestLength = -1;
  for (const [key, entry] of Object.entries(auths)) {
    if (typeof entry !== "object" || entry === null) continue;
    if (normaliseRegistryHost(key) !== host) continue;
    let length = 0;
    if (hasRepositoryPath(key)) {
      const scope = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").split("/").slice(1).join("/").replace(/\/+$/, "");
      if (repository === undefined || !(repository === scope || repository.startsWith(`${scope}/`))) continue;
      length = scope.length;
    }
    if (length > bestLength) {
      best = [key, entry];
      bestLength = length;
    }
  }
  return best;
}

/** True for a containers key naming a namespace, not for docker's `/v1/` and `/v2/` key forms. */
function hasRepositoryPath(key: string): boolean {
  const path = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "").split("/").slice(1).join("/").replace(/\/+$/, "");
  return path !== "" && path !== "v1" && path !== "v2";
}

function credentialFromEntry(entry: AuthEntry, path: string): Credential | undefined {
  if (typeof entry.registrytoken === "string" && entry.registrytoken !== "") {
    return { kind: "bearer", token: entry.registrytoken };
  }
  let username = typeof entry.username === "string" ? entry.username : "";
  let password = typeof entry.password === "string" ? entry.password : "";
  if (typeof entry.auth === "string" && entry.auth !== "") {
    const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    if (colon < 0) throw new OcibootError("LOCAL_IO", `Cannot read credentials from ${path}: an "auth" value is not base64 of user:password`);
    username = decoded.slice(0, colon);
    password = decoded.slice(colon + 1);
  }
  if (typeof entry.identitytoken === "string" && entry.identitytoken !== "") {
    return { kind: "identity-token", username, identityToken: entry.identitytoken };
  }
  if (username === "" && password === "") return undefined;
  return { kind: "basic", username, password };
}

async function credentialFromHelper(helper: string, host: string, options: CredentialOptions): Promise<Credential | undefined> {
  const run = options.runHelper ?? defaultHelperRunner(options.env);
  const serverUrl = host === "docker.io" ? DOCKER_HUB_CONFIG_KEY : host;
  let output: string;
  try {
    output = await run(helper, "get", serverUrl);
  } catch (error) {
    // Helpers exit non-zero with "credentials not found" for unknown hosts.
    if (/not found/i.test((error as Error).message)) return undefined;
    throw new OcibootError("UNAUTHORIZED", `Cannot get credentials for ${host} from docker-credential-${helper}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let parsed: { Username?: unknown; Secret?: unknown };
  try {
    parsed = JSON.parse(output) as { Username?: unknown; Secret?: unknown };
  } catch (cause) {
    throw new OcibootError("UNAUTHORIZED", `Cannot get credentials for ${host} from docker-credential-${helper}: output is not JSON`, { cause });
  }
  const username = typeof parsed.Username === "string" ? parsed.Username : "";
  const secret = typeof parsed.Secret === "string" ? parsed.Secret : "";
  if (secret === "") return undefined;
  // docker's convention: the user name "<token>" marks an identity token.
  if (username === "<token>") return { kind: "identity-token", username: "", identityToken: secret };
  return { kind: "basic", username, password: secret };
}

/** Runs `docker-credential-<helper>` found on the PATH of `env`. */
export function defaultHelperRunner(env: Readonly<Record<string, string | undefined>>): CredentialHelperRunner {
  return (helper, action, input) =>
    new Promise<string>((resolve, reject) => {
      if (!/^[A-Za-z0-9._-]+$/.test(helper)) {
        reject(new Error(`invalid helper name "${helper}"`));
        return;
      }
      const child = execFile(
        `docker-credential-${helper}`,
        [action],
        { env: definedEntries(env), timeout: 30_000, maxBuffer: 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error) {
            const detail = `${String(stdout).trim()} ${String(stderr).trim()}`.trim();
            reject(new Error(detail || error.message));
            return;
          }
          resolve(String(stdout));
        },
      );
      child.stdin?.end(input);
    });
}

function definedEntries(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined) result[key] = value;
  return result;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null && Object.values(value).every((entry) => typeof entry === "string");
}

/** The config.json key `ociboot login` writes for a host: docker's own spelling for Docker Hub. */
export function configKeyFor(host: string): string {
  const normalised = normaliseRegistryHost(host);
  return normalised === "docker.io" ? DOCKER_HUB_CONFIG_KEY : normalised;
}

/**
 * Stores username and password for a host in a docker config file, as `docker login` does:
 * through the configured credential helper if there is one, else base64 in `auths`. The file is
 * written atomically with mode 0600; other keys are kept.
 */
export async function storeCredential(
  path: string,
  host: string,
  username: string,
  password: string,
  options: Pick<CredentialOptions, "env" | "runHelper">,
): Promise<{ helper?: string }> {
  const config = (await readAuthFile(path)) ?? {};
  const key = configKeyFor(host);
  const helper = helperFor(config, host);
  if (helper !== undefined) {
    const run = options.runHelper ?? defaultHelperRunner(options.env);
    try {
      await run(helper, "store", JSON.stringify({ ServerURL: key, Username: username, Secret: password }));
    } catch (cause) {
      throw new OcibootError("LOCAL_IO", `Cannot store credentials with docker-credential-${helper}: ${(cause as Error).message}`, { cause });
    }
    return { helper };
  }
  const auths: Record<string, AuthEntry> = typeof config.auths === "object" && config.auths !== null ? { ...config.auths } : {};
  for (const existing of Object.keys(auths)) {
    if (normaliseRegistryHost(existing) === normaliseRegistryHost(host) && !hasRepositoryPath(existing)) delete auths[existing];
  }
  auths[key] = { auth: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
  await writeConfigAtomically(path, { ...config, auths });
  return {};
}

/** Removes a host's credentials (helper and `auths`); returns false when there were none. */
export async function removeCredential(
  path: string,
  host: string,
  options: Pick<CredentialOptions, "env" | "runHelper">,
): Promise<boolean> {
  const config = await readAuthFile(path);
  if (config === undefined) return false;
  let removed = false;
  const helper = helperFor(config, host);
  if (helper !== undefined) {
    const run = options.runHelper ?? defaultHelperRunner(options.env);
    try {
      await run(helper, "erase", configKeyFor(host));
      removed = true;
    } catch (error) {
      if (!/not found/i.test((error as Error).message)) {
        throw new OcibootError("LOCAL_IO", `Cannot erase credentials with docker-credential-${helper}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  if (typeof config.auths === "object" && config.auths !== null) {
    const auths = { ...config.auths };
    for (const existing of Object.keys(auths)) {
      if (normaliseRegistryHost(existing) === normaliseRegistryHost(host) && !hasRepositoryPath(existing)) {
        delete auths[existing];
        removed = true;
      }
    }
    if (removed) await writeConfigAtomically(path, { ...config, auths });
  }
  return removed;
}

function helperFor(config: AuthConfigFile, host: string): string | undefined {
  const normalised = normaliseRegistryHost(host);
  if (isStringRecord(config.credHelpers)) {
    for (const [key, helper] of Object.entries(config.credHelpers)) {
      if (normaliseRegistryHost(key) === normalised) return helper;
    }
  }
  return typeof config.credsStore === "string" && config.credsStore !== "" ? config.credsStore : undefined;
}

async function writeConfigAtomically(path: string, config: AuthConfigFile): Promise<void> {
  const temporary = join(dirname(path), `.${randomBytes(6).toString("hex")}.config.json.tmp`);
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(temporary, `${JSON.stringify(config, null, "\t")}\n`, { mode: 0o600, flag: "wx" });
    await chmod(temporary, 0o600);
    await rename(temporary, path);
  } catch (cause) {
    await rm(temporary, { force: true }).catch(() => undefined);
    throw new OcibootError("LOCAL_IO", `Cannot write credentials to ${path}: ${(cause as Error).message}`, { cause });
  }
}
