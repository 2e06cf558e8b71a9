import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import type { IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCertificateAuthority, issueServerCertificate } from "./certificates.ts";
import { runOk } from "./commands.ts";
import { terminate, trackChild, trackTemporaryDirectory, untrackTemporaryDirectory } from "./processes.ts";
import { startTokenServer } from "./token-server.ts";
import type { TokenPolicy, TokenServer } from "./token-server.ts";

/**
 * A real CNCF distribution registry (Debian `docker-registry`, v2.8) for integration tests: one
 * process per call, on a free loopback port, with its own storage in a temporary directory.
 */

export interface RegistryOptions {
  /** `basic`: htpasswd; `token`: bearer tokens from a `TokenServer` started alongside. Default `none`. */
  auth?: "none" | "basic" | "token";
  /** Serve HTTPS with a certificate signed by a fresh test CA (`caFile`). The token server follows suit. */
  tls?: boolean;
  /**
   * Run as a pull-through cache of another registry. The credentials reach only an origin with token
   * auth: distribution 2.8 registers them for the Bearer realms its `/v2/` challenge names, never for Basic.
   */
  proxy?: {
    remoteUrl: string;
    username?: string;
    password?: string;
    /** CA the cache must trust to reach an HTTPS origin (given to the registry as SSL_CERT_FILE). */
    caFile?: string;
  };
  /** Token variant only: whether anonymous token requests get `pull`. Default false. */
  allowAnonymousPull?: boolean;
  /** Token variant only: decides what each token grants, e.g. pull but not push on one repository. */
  tokenPolicy?: TokenPolicy;
}

/** One line of the registry's access log. */
export interface RegistryRequestRecord {
  method: string;
  /** Path and query, as the registry saw them. */
  uri: string;
  status: number;
  userAgent: string;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, as it appears in references. */
  host: string;
  /** PID of the registry process, e.g. to stop it (SIGSTOP) and see how a client copes with a hung peer. */
  pid: number;
  /** `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`. */
  url: string;
  /** The filesystem storage root. */
  rootDirectory: string;
  /** Where the registry keeps a blob's bytes: edit the file to simulate corruption at rest. */
  blobDataPath(digest: string): string;
  /** PEM of the CA that signed the server certificate (tls only). */
  caFile?: string;
  /** A directory holding `ca.crt`, for `skopeo --cert-dir` (tls only). */
  certDirectory?: string;
  /** The account that may push and pull (basic and token variants). */
  credentials?: { username: string; password: string };
  tokenServer?: TokenServer;
  /** Everything the registry has logged so far (stderr and stdout). */
  logs(): string;
  /**
   * Requests from the access log so far. Distribution logs method, URI, status and user agent, but no
   * request headers (no Range, no Authorization). A line appears just after its response was sent.
   */
  requests(): RegistryRequestRecord[];
  /** Resolves once a log line matches, for assertions racing the access log. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Kills the registry by PID, waits for its exit and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

const REGISTRY_BINARY = "docker-registry";
const STARTUP_TIMEOUT_MS = 15_000;
const LOG_LIMIT_CHARS = 16 * 1024 * 1024;
const LISTENING_LINE = /listening on ([0-9.]+):(\d+)/;
// Gorilla's combined log format, which distribution writes as its access log.
const ACCESS_LOG_LINE = /^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) \S+ "[^"]*" "([^"]*)"$/;

/** Starts a registry and resolves once `GET /v2/` answers (401 for the auth variants). */
export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const auth = options.auth ?? "none";
  const directory = await mkdtemp(join(tmpdir(), "ociboot-registry-"));
  trackTemporaryDirectory(directory);
  const rootDirectory = join(directory, "storage");
  await mkdir(rootDirectory);

  let tokenServer: TokenServer | undefined;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    const http: Record<string, unknown> = { addr: "127.0.0.1:0", secret: randomBytes(16).toString("hex") };
    const config: Record<string, unknown> = {
      version: "0.1",
      log: { level: "info", formatter: "text" },
      storage: {
        filesystem: { rootdirectory: rootDirectory },
        delete: { enabled: true },
        // The purge would delete uploads of slow tests mid-flight; nothing here lives long enough to leak.
        maintenance: { uploadpurging: { enabled: false } },
      },
      http,
    };

    let authority: Awaited<ReturnType<typeof createCertificateAuthority>> | undefined;
    let serverCertificate: Awaited<ReturnType<typeof issueServerCertificate>> | undefined;
    if (options.tls === true) {
      authority = await createCertificateAuthority(join(directory, "ca"));
      serverCertificate = await issueServerCertificate(authority, join(directory, "server"));
      http["tls"] = { certificate: serverCertificate.certificateFile, key: serverCertificate.keyFile };
    }

    let credentials: { username: string; password: string } | undefined;
    if (auth === "basic") {
      credentials = newCredentials();
      const htpasswdFile = join(directory, "htpasswd");
      // -C 4: the lowest bcrypt cost; the default makes each authenticated request noticeably slower.
      const { stdout } = await runOk("htpasswd", ["-Bbn", "-C", "4", credentials.username, credentials.password]);
      await writeFile(htpasswdFile, stdout);
      config["auth"] = { htpasswd: { realm: "ociboot-test", path: htpasswdFile } };
    } else if (auth === "token") {
      credentials = newCredentials();
      tokenServer = await startTokenServer({
        service: "ociboot-test-registry",
        issuer: "ociboot-test-token-server",
        credentials,
        allowAnonymousPull: options.allowAnonymousPull ?? false,
        ...(options.tokenPolicy === undefined ? {} : { policy: options.tokenPolicy }),
        directory: join(directory, "token-server"),
        ...(serverCertificate === undefined ? {} : { tls: serverCertificate }),
      });
      config["auth"] = {
        token: {
          realm: tokenServer.realm,
          service: tokenServer.service,
          issuer: tokenServer.issuer,
          rootcertbundle: tokenServer.signingCertificateFile,
        },
      };
    }

    if (options.proxy !== undefined) {
      config["proxy"] = {
        remoteurl: options.proxy.remoteUrl,
        ...(options.proxy.username === undefined ? {} : { username: options.proxy.username }),
        ...(options.proxy.password === undefined ? {} : { password: options.proxy.password }),
      };
    }

    // JSON is YAML, so the config needs no YAML writer.
    const configFile = join(directory, "config.yml");
    await writeFile(configFile, JSON.stringify(config, null, 2));

    const env: NodeJS.ProcessEnv = { ...process.env };
    // The registry reads REGISTRY_* variables as config overrides; none from the outside may leak in.
    for (const name of Object.keys(env)) if (name.startsWith("REGISTRY_")) delete env[name];
    if (options.proxy?.caFile !== undefined) env["SSL_CERT_FILE"] = options.proxy.caFile;

    const spawned = spawn(REGISTRY_BINARY, ["serve", configFile], { env, stdio: ["ignore", "pipe", "pipe"] });
    child = spawned;
    trackChild(spawned);
    const log = new LogBuffer();
    // The access log comes on stdout, everything else on stderr: whole lines only, so they never interleave.
    for (const stream of [spawned.stdout, spawned.stderr]) {
      stream.setEncoding("utf8");
      let partialLine = "";
      stream.on("data", (chunk: string) => {
        const lastNewline = chunk.lastIndexOf("\n");
        if (lastNewline < 0) {
          partialLine += chunk;
          return;
        }
        log.append(partialLine + chunk.slice(0, lastNewline + 1));
        partialLine = chunk.slice(lastNewline + 1);
      });
      stream.on("end", () => {
        if (partialLine !== "") log.append(`${partialLine}\n`);
      });
    }

    spawned.once("exit", (code, signal) => log.append(`[harness] ${REGISTRY_BINARY} exited (${code ?? signal})\n`));

    const port = await waitForListening(spawned, log);
    const scheme = options.tls === true ? "https" : "http";
    const host = `127.0.0.1:${port}`;
    const url = `${scheme}://${host}`;
    const caPem = authority === undefined ? undefined : await readFile(authority.caFile);
    await waitForApi(url, caPem, auth === "none" ? 200 : 401, log);

    let stopped: Promise<void> | undefined;
    const registry: RunningRegistry = {
      host,
      pid: spawned.pid ?? 0,
      url,
      rootDirectory,
      blobDataPath: (digest) => blobDataPath(rootDirectory, digest),
      logs: () => log.text(),
      requests: () => parseAccessLog(log.text()),
      waitForLog: (pattern, timeoutMs = 5_000) => log.waitFor(pattern, timeoutMs),
      stop() {
        stopped ??= (async () => {
          await terminate(spawned);
          await tokenServer?.stop();
          await rm(directory, { recursive: true, force: true });
          untrackTemporaryDirectory(directory);
        })();
        return stopped;
      },
    };
    if (authority !== undefined) {
      registry.caFile = authority.caFile;
      registry.certDirectory = authority.certDirectory;
    }
    if (credentials !== undefined) registry.credentials = credentials;
    if (tokenServer !== undefined) registry.tokenServer = tokenServer;
    return registry;
  } catch (error) {
    if (child !== undefined) await terminate(child);
    await tokenServer?.stop();
    await rm(directory, { recursive: true, force: true });
    untrackTemporaryDirectory(directory);
    throw error;
  }
}

/** `<root>/docker/registry/v2/blobs/sha256/<2 hex>/<hex>/data`, the layout of distribution's filesystem driver. */
export function blobDataPath(rootDirectory: string, digest: string): string {
  const match = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (match?.[1] === undefined) throw new Error(`Cannot locate blob: "${digest}" is not a sha256 digest`);
  const hex = match[1];
  return join(rootDirectory, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
}

function newCredentials(): { username: string; password: string } {
  return { username: "ociboot-tester", password: randomBytes(12).toString("hex") };
}

function parseAccessLog(text: string): RegistryRequestRecord[] {
  const records: RegistryRequestRecord[] = [];
  for (const line of text.split("\n")) {
    const match = ACCESS_LOG_LINE.exec(line);
    if (match === null) continue;
    const [, method = "", uri = "", status = "0", userAgent = ""] = match;
    records.push({ method, uri, status: Number(status), userAgent });
  }
  return records;
}

/** Collects log output, capped from the front so a chatty long test cannot exhaust memory. */
class LogBuffer {
  #text = "";
  #waiters = new Set<() => void>();

  append(chunk: string): void {
    this.#text += chunk;
    if (this.#text.length > LOG_LIMIT_CHARS) this.#text = this.#text.slice(-LOG_LIMIT_CHARS / 2);
    for (const wake of this.#waiters) wake();
  }

  text(): string {
    return this.#text;
  }

  /** Resolves with the first matching line, checking now and after every append. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const line = this.#text.split("\n").find((candidate) => pattern.test(candidate));
        if (line === undefined) return false;
        cleanup();
        resolve(line);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`Cannot find ${pattern} in the registry log within ${timeoutMs} ms:\n${this.#text.slice(-4_000)}`));
      }, timeoutMs);
      const wake = (): void => void check();
      const cleanup = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
      };
      this.#waiters.add(wake);
      check();
    });
  }
}

async function waitForListening(child: ReturnType<typeof spawn>, log: LogBuffer): Promise<number> {
  const exited = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(new Error(`Cannot start ${REGISTRY_BINARY}: ${error.message}`)));
    child.once("exit", (code, signal) =>
      reject(new Error(`Cannot start ${REGISTRY_BINARY}: it exited (${code ?? signal}) before listening:\n${log.text()}`)),
    );
  });
  exited.catch(() => {});
  const line = await Promise.race([log.waitFor(LISTENING_LINE, STARTUP_TIMEOUT_MS), exited]);
  const port = LISTENING_LINE.exec(line)?.[2];
  if (port === undefined) throw new Error(`Cannot read the port from "${line}"`);
  return Number(port);
}

/**
 * Polls `GET /v2/` until it gives the expected status. The listening line is logged right after the
 * socket is bound, so this normally succeeds on the first try; it guards against a half-started server.
 */
async function waitForApi(url: string, caPem: Buffer | undefined, expectedStatus: number, log: LogBuffer): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let lastProblem = "";
  while (Date.now() < deadline) {
    try {
      const status = await getStatus(`${url}/v2/`, caPem);
      if (status === expectedStatus) return;
      lastProblem = `status ${status}, expected ${expectedStatus}`;
    } catch (error) {
      lastProblem = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`Cannot reach ${url}/v2/: ${lastProblem}\n${log.text().slice(-4_000)}`);
}

function getStatus(target: string, caPem: Buffer | undefined): Promise<number> {
  return new Promise((resolve, reject) => {
    const onResponse = (response: IncomingMessage): void => {
      response.resume();
      resolve(response.statusCode ?? 0);
    };
    const request = target.startsWith("https:")
      ? httpsRequest(target, { method: "GET", ...(caPem === undefined ? {} : { ca: caPem }), agent: false }, onResponse)
      : httpRequest(target, { method: "GET", agent: false }, onResponse);
    request.setTimeout(2_000, () => request.destroy(new Error("timed out")));
    request.once("error", reject);
    request.end();
  });
}
