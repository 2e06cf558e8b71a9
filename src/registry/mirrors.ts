import { readFileSync } from "node:fs";
import { parse as parseToml, TomlError } from "smol-toml";
import { OcibootError } from "../errors.ts";

/** Which pulls may use a mirror (containers-registries.conf(5) `pull-from-mirror`). */
export type PullFromMirror = "all" | "digest-only" | "tag-only";

/** One mirror of a registry (or of a namespace in it). */
export interface Mirror {
  /** `host[:port]` with an optional path prefix, e.g. `127.0.0.1:5001` or `cache.local/ghcr`. */
  location: string;
  /** Allow plain HTTP and unverified TLS for this mirror (containers-registries.conf(5) `insecure`). */
  insecure: boolean;
  /** Absent means `all`. */
  pullFrom?: PullFromMirror;
}

/** Mirrors for everything under `prefix` (`host[:port]`, `host[:port]/namespace` or `*.domain`). */
export interface MirrorRule {
  prefix: string;
  /** Where the origin really is, when it differs from `prefix`: the matched prefix is replaced by it. */
  location?: string;
  mirrors: Mirror[];
  /** Mirrors serve only pulls by digest; tags always resolve at the origin. */
  mirrorByDigestOnly?: boolean;
}

/** The parsed mirror configuration. */
export interface MirrorConfig {
  rules: MirrorRule[];
}

/** Where a pull may go: a mirror or the origin, with the repository name on that host. */
export interface PullEndpoint {
  registry: string;
  repository: string;
  insecure: boolean;
  mirror: boolean;
}

/**
 * Keys of containers-registries.conf(5) (version 2, and version 1's `[registries.*]` lists) and
 * their TOML types. Those marked `ignored` are accepted so a system file loads as it is, and do
 * nothing here (docs/registries.md says which and why). Anything else is an error: a misspelt
 * `mirror-by-digest-only` must not silently send tag pulls to a mirror.
 */
const TOP_LEVEL: Readonly<Record<string, Shape>> = {
  "unqualified-search-registries": "string[] ignored",
  "short-name-mode": "string ignored",
  "credential-helpers": "string[] ignored",
  "additional-layer-store-auth-helper": "string ignored",
  registry: "registry[]",
  aliases: "string-table ignored",
  registries: "v1 ignored",
};
const REGISTRY_KEYS: Readonly<Record<string, Shape>> = {
  prefix: "string",
  location: "string",
  insecure: "boolean ignored",
  blocked: "boolean ignored",
  "mirror-by-digest-only": "boolean",
  mirror: "mirror[]",
};
const MIRROR_KEYS: Readonly<Record<string, Shape>> = {
  location: "string",
  insecure: "boolean",
  "pull-from-mirror": "string",
};
const V1_LISTS = ["search", "insecure", "block"];
type Shape =
  | "string"
  | "boolean"
  | "string ignored"
  | "boolean ignored"
  | "string[] ignored"
  | "string-table ignored"
  | "v1 ignored"
  | "registry[]"
  | "mirror[]";

/**
 * Parses containers-registries.conf(5) with a TOML 1.0 parser: `[[registry]]` tables with their
 * mirrors, as `[[registry.mirror]]` tables or inline (`mirror = [{ location = "…" }]`).
 *
 * ```toml
 * [[registry]]
 * prefix = "ghcr.io/gardenlinux"       # what the user names
 * location = "ghcr.example/gardenlinux" # where it really is (optional)
 * mirror-by-digest-only = true
 * [[registry.mirror]]
 * location = "cache.local:5000"
 * insecure = true
 * ```
 *
 * A syntax error, a key the format does not have or a value of the wrong type is a usage error
 * naming the line.
 */
export function parseMirrorConfig(text: string, source = "registries.conf"): MirrorConfig {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text);
  } catch (cause) {
    if (cause instanceof TomlError) {
      throw new OcibootError("USAGE", `Cannot read registry configuration ${source}: line ${cause.line}: ${firstLine(cause.message)}`, { cause });
    }
    throw cause;
  }
  const fail = (path: Path, problem: string): never => {
    throw configError(source, `line ${lineOf(text, path)}: ${formatPath(path)} ${problem}`);
  };
  const rules: MirrorRule[] = [];
  for (const [key, value] of Object.entries(document)) {
    const shape = TOP_LEVEL[key];
    if (shape === undefined) fail([key], "is not a registries.conf setting");
    if (shape === "registry[]") {
      const tables = tablesOf(value, [key], fail);
      tables.forEach((table, index) => {
        const rule = registryRule(table, [key, index], fail);
        if (rule !== undefined) rules.push(rule);
      });
    } else {
      checkShape(value, shape as Shape, [key], fail);
    }
  }
  return { rules };
}

type Path = Array<string | number>;
type Fail = (path: Path, problem: string) => never;

function registryRule(table: Record<string, unknown>, path: Path, fail: Fail): MirrorRule | undefined {
  const fields: { prefix?: string; location?: string; mirrorByDigestOnly?: boolean; mirrors: Mirror[] } = { mirrors: [] };
  for (const [key, value] of Object.entries(table)) {
    const shape = REGISTRY_KEYS[key];
    if (shape === undefined) fail([...path, key], "is not a [[registry]] setting");
    if (shape === "mirror[]") {
      tablesOf(value, [...path, key], fail).forEach((mirror, index) => fields.mirrors.push(mirrorOf(mirror, [...path, key, index], fail)));
      continue;
    }
    checkShape(value, shape as Shape, [...path, key], fail);
    if (key === "prefix") fields.prefix = value as string;
    if (key === "location") fields.location = value as string;
    if (key === "mirror-by-digest-only") fields.mirrorByDigestOnly = value as boolean;
  }
  const prefix = fields.prefix ?? fields.location;
  if (prefix === undefined) fail(path, "has neither prefix nor location");
  const rule: MirrorRule = { prefix: normaliseLocation(prefix as string), mirrors: fields.mirrors };
  // A wildcard prefix only selects settings; there is nothing to rewrite it to.
  if (fields.location !== undefined && !rule.prefix.startsWith("*.")) {
    const location = normaliseLocation(fields.location);
    if (location !== rule.prefix) rule.location = location;
  }
  if (fields.mirrorByDigestOnly === true) rule.mirrorByDigestOnly = true;
  // A table that neither remaps nor mirrors only carries settings ociboot ignores.
  return rule.mirrors.length > 0 || rule.location !== undefined ? rule : undefined;
}

function mirrorOf(table: Record<string, unknown>, path: Path, fail: Fail): Mirror {
  let location: string | undefined;
  const mirror: Omit<Mirror, "location"> = { insecure: false };
  for (const [key, value] of Object.entries(table)) {
    const shape = MIRROR_KEYS[key];
    if (shape === undefined) fail([...path, key], "is not a [[registry.mirror]] setting");
    checkShape(value, shape as Shape, [...path, key], fail);
    if (key === "location") location = value as string;
    if (key === "insecure") mirror.insecure = value as boolean;
    if (key === "pull-from-mirror") {
      if (value !== "all" && value !== "digest-only" && value !== "tag-only") fail([...path, key], 'must be "all", "digest-only" or "tag-only"');
      if (value !== "all") mirror.pullFrom = value as PullFromMirror;
    }
  }
  if (location === undefined) fail(path, "has no location");
  return { location: normaliseLocation(location as string), ...mirror };
}

function tablesOf(value: unknown, path: Path, fail: Fail): Array<Record<string, unknown>> {
  if (!Array.isArray(value)) fail(path, "must be an array of tables");
  (value as unknown[]).forEach((item, index) => {
    if (!isTable(item)) fail([...path, index], "must be a table");
  });
  return value as Array<Record<string, unknown>>;
}

function checkShape(value: unknown, shape: Shape, path: Path, fail: Fail): void {
  const kind = shape.replace(/ ignored$/, "");
  switch (kind) {
    case "string":
      if (typeof value !== "string") fail(path, "must be a string");
      return;
    case "boolean":
      if (typeof value !== "boolean") fail(path, "must be true or false");
      return;
    case "string[]":
      if (!Array.isArray(value) || value.some((item) => typeof item !== "string")) fail(path, "must be an array of strings");
      return;
    case "string-table":
      if (!isTable(value)) fail(path, "must be a table");
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== "string") fail([...path, key], "must be a string");
      }
      return;
    case "v1":
      // Version 1: [registries.search], [registries.insecure], [registries.block], each `registries = [...]`.
      if (!isTable(value)) fail(path, "must be a table");
      for (const [list, table] of Object.entries(value as Record<string, unknown>)) {
        if (!V1_LISTS.includes(list)) fail([...path, list], "is not a registries.conf setting");
        if (!isTable(table)) fail([...path, list], "must be a table");
        for (const [key, item] of Object.entries(table as Record<string, unknown>)) {
          if (key !== "registries") fail([...path, list, key], "is not a registries.conf setting");
          checkShape(item, "string[]" as Shape, [...path, list, key], fail);
        }
      }
      return;
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function formatPath(path: Path): string {
  return path.map((part, index) => (typeof part === "number" ? `[${part}]` : index === 0 ? part : `.${part}`)).join("");
}

/**
 * The line where `path` first appears: the TOML parser keeps no positions, so this parses growing
 * prefixes of the text until the path exists. A prefix that cuts a multi-line value in two does
 * not parse and is skipped, which places such a value at its closing line. Only runs on the error
 * path, on files of a few hundred lines.
 */
function lineOf(text: string, path: Path): number {
  const lines = text.split("\n");
  for (let count = 1; count <= lines.length; count++) {
    let prefix: unknown;
    try {
      prefix = parseToml(lines.slice(0, count).join("\n"));
    } catch {
      continue;
    }
    if (hasPath(prefix, path)) return count;
  }
  return lines.length;
}

function hasPath(value: unknown, path: Path): boolean {
  let current = value;
  for (const part of path) {
    if (typeof current !== "object" || current === null || !(part in current)) return false;
    current = (current as Record<string | number, unknown>)[part];
  }
  return true;
}

function firstLine(message: string): string {
  return (message.split("\n")[0] ?? message).replace(/^Invalid TOML document: /, "");
}

/** Reads and parses a mirror configuration file. */
export function readMirrorConfig(path: string): MirrorConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (cause) {
    throw new OcibootError("LOCAL_IO", `Cannot read registry configuration ${path}: ${(cause as Error).message}`, { cause });
  }
  return parseMirrorConfig(text, path);
}

/**
 * Parses a `--registry-mirror` value: `ORIGIN=MIRROR[,MIRROR…]`, each mirror optionally prefixed
 * `http://` to mark it insecure (plain HTTP allowed), e.g. `ghcr.io=http://10.0.0.5:5000`.
 */
export function parseMirrorFlag(value: string): MirrorRule {
  const equals = value.indexOf("=");
  if (equals <= 0 || equals === value.length - 1) {
    throw new OcibootError("USAGE", `Cannot read mirror "${value}": expected ORIGIN=MIRROR[,MIRROR…]`);
  }
  const prefix = normaliseLocation(value.slice(0, equals));
  const mirrors = value
    .slice(equals + 1)
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry !== "")
    .map((entry) => ({ location: normaliseLocation(entry), insecure: entry.toLowerCase().startsWith("http://") }));
  return { prefix, mirrors };
}

/** Merges configurations; earlier rules win for the same prefix. */
export function mergeMirrorConfigs(...configs: MirrorConfig[]): MirrorConfig {
  return { rules: configs.flatMap((config) => config.rules) };
}

/**
 * Where to try a pull of `registry/repository`: the mirrors of the most specific matching rule
 * that serve this kind of pull (with the matched prefix replaced by each mirror's location), then
 * the origin — itself rewritten when the rule has a `location`. `byDigest` says whether the pull
 * names its content by digest (a blob, or a manifest by digest) rather than by tag.
 */
export function pullEndpoints(config: MirrorConfig | undefined, registry: string, repository: string, options: { byDigest?: boolean } = {}): PullEndpoint[] {
  const origin: PullEndpoint = { registry, repository, insecure: false, mirror: false };
  if (config === undefined) return [origin];
  const host = registry.toLowerCase();
  const name = `${host}/${repository}`;
  let best: MirrorRule | undefined;
  let bestLength = -1;
  for (const rule of config.rules) {
    const prefix = rule.prefix.toLowerCase();
    const wildcard = prefix.startsWith("*.") && host.endsWith(prefix.slice(1));
    if (wildcard || name === prefix || name.startsWith(`${prefix}/`) || (!prefix.includes("/") && host === prefix)) {
      // A wildcard loses to any exact host or namespace match.
      const length = wildcard ? 0 : prefix.length;
      if (length > bestLength) [best, bestLength] = [rule, length];
    }
  }
  if (best === undefined) return [origin];
  const matched = best.prefix.startsWith("*.") ? host : best.prefix.toLowerCase();
  const rest = name.slice(matched.length).replace(/^\//, "");
  const byDigest = options.byDigest === true;
  const endpoints = best.mirrors
    .filter((mirror) => {
      // As in containers-image: mirror-by-digest-only overrides each mirror's pull-from-mirror.
      if (best.mirrorByDigestOnly === true) return byDigest;
      if (mirror.pullFrom === "digest-only") return byDigest;
      if (mirror.pullFrom === "tag-only") return !byDigest;
      return true;
    })
    .map((mirror) => ({ ...splitLocation(mirror.location, rest), insecure: mirror.insecure, mirror: true }));
  const remappedOrigin = best.location === undefined ? origin : { ...splitLocation(best.location, rest), insecure: false, mirror: false };
  return [...endpoints, remappedOrigin];
}

function splitLocation(location: string, rest: string): { registry: string; repository: string } {
  const slash = location.indexOf("/");
  const host = slash < 0 ? location : location.slice(0, slash);
  const path = slash < 0 ? "" : location.slice(slash + 1);
  return { registry: host, repository: [path, rest].filter((part) => part !== "").join("/") };
}

function normaliseLocation(location: string): string {
  return location
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/+$/, "");
}

function configError(source: string, detail: string): OcibootError {
  return new OcibootError("USAGE", `Cannot read registry configuration ${source}: ${detail}`);
}
