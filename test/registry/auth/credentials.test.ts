import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type CredentialHelperRunner,
  findCredential,
  normaliseRegistryHost,
  removeCredential,
  storeCredential,
} from "../../../src/registry/auth/credentials.ts";

let work: string;
let counter = 0;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-credentials-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

const auth = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString("base64") });

async function configDirectory(config: unknown): Promise<string> {
  const directory = join(work, `config-${counter++}`);
  await mkdir(directory, { recursive: true });
  await writeFile(join(directory, "config.json"), JSON.stringify(config));
  return directory;
}

describe("normaliseRegistryHost", () => {
  it("maps every docker key form to host[:port]", () => {
    expect(normaliseRegistryHost("https://index.docker.io/v1/")).toBe("docker.io");
    expect(normaliseRegistryHost("registry-1.docker.io")).toBe("docker.io");
    expect(normaliseRegistryHost("http://Host.Example:5000")).toBe("host.example:5000");
    expect(normaliseRegistryHost("host.example:5000/v2/")).toBe("host.example:5000");
    expect(normaliseRegistryHost("[::1]:5000")).toBe("[::1]:5000");
  });
});

describe("findCredential", () => {
  it("finds auths entries in every key form, by exact host and port", async () => {
    const DOCKER_CONFIG = await configDirectory({
      auths: {
        "https://index.docker.io/v1/": auth("hub", "hub-pw"),
        "http://127.0.0.1:5000": auth("local", "local-pw"),
        "registry.example.com:5001/v2/": auth("v2", "v2-pw"),
        "registry.example.com": { username: "plain", password: "plain-pw" },
      },
    });
    const options = { env: { DOCKER_CONFIG }, homeDir: work };
    expect((await findCredential("docker.io", "library/alpine", options))?.credential).toEqual({ kind: "basic", username: "hub", password: "hub-pw" });
    expect((await findCredential("127.0.0.1:5000", "x", options))?.credential).toMatchObject({ username: "local" });
    expect((await findCredential("registry.example.com:5001", "x", options))?.credential).toMatchObject({ username: "v2" });
    expect((await findCredential("registry.example.com", "x", options))?.credential).toMatchObject({ username: "plain" });
    // Never by suffix, prefix or another port.
    expect(await findCredential("registry.example.com.evil.net", "x", options)).toBeUndefined();
    expect(await findCredential("evil-registry.example.com", "x", options)).toBeUndefined();
    expect(await findCredential("127.0.0.1:5001", "x", options)).toBeUndefined();
    expect(await findCredential("127.0.0.1", "x", options)).toBeUndefined();
  });

  it("reads identity and registry tokens", async () => {
    const DOCKER_CONFIG = await configDirectory({
      auths: { "a.example": { ...auth("u", ""), identitytoken: "refresh-me" }, "b.example": { registrytoken: "bearer-me" } },
    });
    const options = { env: { DOCKER_CONFIG }, homeDir: work };
    expect((await findCredential("a.example", "x", options))?.credential).toEqual({ kind: "identity-token", username: "u", identityToken: "refresh-me" });
    expect((await findCredential("b.example", "x", options))?.credential).toEqual({ kind: "bearer", token: "bearer-me" });
  });

  it("asks credHelpers, then credsStore, with the host as server URL", async () => {
    const calls: string[] = [];
    const runHelper: CredentialHelperRunner = async (helper, action, input) => {
      calls.push(`${helper} ${action} ${input}`);
      if (helper === "pass" && input === "ghcr.io") return JSON.stringify({ ServerURL: input, Username: "gh", Secret: "gh-pw" });
      if (helper === "desktop" && input === "quay.io") return JSON.stringify({ ServerURL: input, Username: "<token>", Secret: "refresh" });
      throw new Error("credentials not found in native keychain");
    };
    const DOCKER_CONFIG = await configDirectory({
      credsStore: "desktop",
      credHelpers: { "ghcr.io": "pass" },
      auths: { "other.example": auth("file", "file-pw") },
    });
    const options = { env: { DOCKER_CONFIG }, homeDir: work, runHelper };
    expect((await findCredential("ghcr.io", "x", options))?.credential).toEqual({ kind: "basic", username: "gh", password: "gh-pw" });
    expect((await findCredential("quay.io", "x", options))?.credential).toEqual({ kind: "identity-token", username: "", identityToken: "refresh" });
    // The store knows nothing of it: auths still count.
    expect((await findCredential("other.example", "x", options))?.credential).toMatchObject({ username: "file" });
    expect(calls).toEqual(["pass get ghcr.io", "desktop get quay.io", "desktop get other.example"]);
  });

  it("runs a real docker-credential-<name> from PATH", async () => {
    const bin = join(work, "bin");
    await mkdir(bin, { recursive: true });
    await writeFile(
      join(bin, "docker-credential-fake"),
      '#!/bin/sh\nread server\nif [ "$1" = get ] && [ "$server" = "helper.example" ]; then echo \'{"ServerURL":"helper.example","Username":"h","Secret":"h-pw"}\'; else echo "credentials not found in native keychain"; exit 1; fi\n',
      { mode: 0o755 },
    );
    const DOCKER_CONFIG = await configDirectory({ credHelpers: { "helper.example": "fake" } });
    const options = { env: { DOCKER_CONFIG, PATH: `${bin}:/usr/bin:/bin` }, homeDir: work };
    expect((await findCredential("helper.example", "x", options))?.credential).toEqual({ kind: "basic", username: "h", password: "h-pw" });
  });

  it("looks at $REGISTRY_AUTH_FILE and $XDG_RUNTIME_DIR/containers/auth.json, with repository-scoped keys", async () => {
    const runtime = join(work, "runtime");
    await mkdir(join(runtime, "containers"), { recursive: true });
    await writeFile(
      join(runtime, "containers", "auth.json"),
      JSON.stringify({ auths: { "quay.io": auth("org", "org-pw"), "quay.io/team/private": auth("team", "team-pw") } }),
    );
    const authFile = join(work, "registry-auth.json");
    await writeFile(authFile, JSON.stringify({ auths: { "ci.example": auth("ci", "ci-pw") } }));
    const options = { env: { XDG_RUNTIME_DIR: runtime, REGISTRY_AUTH_FILE: authFile, DOCKER_CONFIG: join(work, "none") }, homeDir: work };
    expect((await findCredential("ci.example", "x", options))?.credential).toMatchObject({ username: "ci" });
    expect((await findCredential("quay.io", "team/private/image", options))?.credential).toMatchObject({ username: "team" });
    expect((await findCredential("quay.io", "team/privateer", options))?.credential).toMatchObject({ username: "org" });
    expect((await findCredential("quay.io", "other", options))?.credential).toMatchObject({ username: "org" });
  });

  it("uses CI environment credentials only for the hosts named in OCIBOOT_REGISTRY_HOST", async () => {
    const env = { OCIBOOT_REGISTRY_HOST: "ghcr.io, 127.0.0.1:5000", OCIBOOT_USERNAME: "ci", OCIBOOT_PASSWORD: "ci-pw", DOCKER_CONFIG: join(work, "none") };
    expect((await findCredential("ghcr.io", "x", { env, homeDir: work }))?.credential).toEqual({ kind: "basic", username: "ci", password: "ci-pw" });
    expect((await findCredential("127.0.0.1:5000", "x", { env, homeDir: work }))?.source).toBe("$OCIBOOT_USERNAME");
    expect(await findCredential("ghcr.io.evil.net", "x", { env, homeDir: work })).toBeUndefined();
    const token = { OCIBOOT_REGISTRY_HOST: "ghcr.io", OCIBOOT_REGISTRY_TOKEN: "t0k", DOCKER_CONFIG: join(work, "none") };
    expect((await findCredential("ghcr.io", "x", { env: token, homeDir: work }))?.credential).toEqual({ kind: "bearer", token: "t0k" });
    const unnamed = { OCIBOOT_USERNAME: "ci", OCIBOOT_PASSWORD: "ci-pw", DOCKER_CONFIG: join(work, "none") };
    expect(await findCredential("ghcr.io", "x", { env: unnamed, homeDir: work })).toBeUndefined();
  });

  it("prefers explicit --username over every file", async () => {
    const DOCKER_CONFIG = await configDirectory({ auths: { "a.example": auth("file", "file-pw") } });
    const found = await findCredential("a.example", "x", { env: { DOCKER_CONFIG }, homeDir: work, username: "me", password: "pw" });
    expect(found).toEqual({ credential: { kind: "basic", username: "me", password: "pw" }, source: "--username" });
  });

  it("defaults to ~/.docker/config.json and reports a broken file as LOCAL_IO", async () => {
    const home = join(work, "home");
    await mkdir(join(home, ".docker"), { recursive: true });
    await writeFile(join(home, ".docker", "config.json"), "{not json");
    await expect(findCredential("a.example", "x", { env: {}, homeDir: home })).rejects.toMatchObject({ code: "LOCAL_IO" });
  });
});

describe("storeCredential / removeCredential", () => {
  it("writes docker's format atomically with mode 0600, keeping other keys", async () => {
    const directory = await configDirectory({ auths: { "keep.example": auth("k", "k") }, psFormat: "table" });
    const path = join(directory, "config.json");
    await storeCredential(path, "http://127.0.0.1:5000/", "me", "pw:with:colons", { env: {} });
    await storeCredential(path, "docker.io", "hub", "hub-pw", { env: {} });
    const config = JSON.parse(await readFile(path, "utf8")) as { auths: Record<string, { auth: string }>; psFormat: string };
    expect(Object.keys(config.auths).sort()).toEqual(["127.0.0.1:5000", "https://index.docker.io/v1/", "keep.example"]);
    expect(config.psFormat).toBe("table");
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await findCredential("127.0.0.1:5000", "x", { env: { DOCKER_CONFIG: directory }, homeDir: work }))?.credential).toEqual({
      kind: "basic",
      username: "me",
      password: "pw:with:colons",
    });
    expect(await removeCredential(path, "127.0.0.1:5000", { env: {} })).toBe(true);
    expect(await removeCredential(path, "127.0.0.1:5000", { env: {} })).toBe(false);
    expect(await findCredential("127.0.0.1:5000", "x", { env: { DOCKER_CONFIG: directory }, homeDir: work })).toBeUndefined();
  });

  it("goes through the configured credential helper", async () => {
    const calls: string[] = [];
    const runHelper: CredentialHelperRunner = async (helper, action, input) => {
      calls.push(`${helper} ${action} ${input}`);
      return "";
    };
    const directory = await configDirectory({ credsStore: "secretservice" });
    const path = join(directory, "config.json");
    expect(await storeCredential(path, "ghcr.io", "me", "pw", { env: {}, runHelper })).toEqual({ helper: "secretservice" });
    expect(await removeCredential(path, "ghcr.io", { env: {}, runHelper })).toBe(true);
    expect(calls).toEqual(['secretservice store {"ServerURL":"ghcr.io","Username":"me","Secret":"pw"}', "secretservice erase ghcr.io"]);
    expect(JSON.parse(await readFile(path, "utf8"))).toEqual({ credsStore: "secretservice" });
  });
});
