import { readFileSync } from "node:fs";
import { OcibootError } from "../errors.ts";

/** One mirror of a registry (or of a namespace in it). */
export interface Mirror {
  /** `host[:port]` with an optional path prefix, e.g. `127.0.0.1:5001` or `cache.local/ghcr`. */
  location: string;
  /** Allow plain HTTP and unverified TLS for this mirror (containers-registries.conf(5) `insecure`). */
  insecure: boolean;
}

/** Mirrors for everything under `prefix` (`host[:port]` or `host[:port]/namespace`). */
export interface MirrorRule {
  prefix: string;
  mirrors: Mirror[];
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
 * Parses the mirror part of containers-registries.conf(5) (version 2 TOML):
 *
 * ```toml
 * [[registry]]
 * location = "ghcr.io"          # or prefix = "ghcr.io/gardenlinux"
 * [[registry.mirror]]
 * location = "cache.local:5000"
 * insecure = true
 * ```
 *
 * Only the keys mirrors need are read (`prefix`, `location`, `insecure`, `mirror`); other keys and
 * tables are ignored, so a system registries.conf can be used as is.
 */
export function parseMirrorConfig(text: string, source = "registries.conf"): MirrorConfig {
  const rules: MirrorRule[] = [];
  let table: "registry" | "mirror" | "other" = "other";
  let registry: { prefix?: string; location?: string; mirrors: Mirror[] } | undefined;
  let mirror: { location?: string; insecure: boolean } | undefined;
  const flushMirror = () => {
    if (mirror !== undefined && registry !== undefined) {
      if (mirror.location === undefined) throw configError(source, "a [[registry.mirror]] has no location");
      registry.mirrors.push({ location: normaliseLocation(mirror.location), insecure: mirror.insecure });
    }
    mirror = undefined;
  };
  const flushRegistry = () => {
    flushMirror();
    if (registry !== undefined) {
      const prefix = registry.prefix ?? registry.location;
      if (prefix === undefined) throw configError(source, "a [[registry]] has neither prefix nor location");
      if (registry.mirrors.length > 0) rules.push({ prefix: normaliseLocation(prefix), mirrors: registry.mirrors });
    }
    registry = undefined;
  };
  const lines = text.split(/\r?\n/);
  for (const [index, rawLine] of lines.entries()) {
    const line = stripComment(rawLine).trim();
    if (line === "") continue;
    const where = `line ${index + 1}`;
    if (line === "[[registry]]") {
      flushRegistry();
      registry = { mirrors: [] };
      table = "registry";
      continue;
    }
    if (line === "[[registry.mirror]]") {
      if (registry === undefined) throw configError(source, `${where}: [[registry.mirror]] outside a [[registry]]`);
      flushMirror();
      mirror = { insecure: false };
      table = "mirror";
      continue;
    }
    if (line.startsWith("[")) {
      flushRegistry();
      table = "other";
      continue;
    }
    // Only the mirror tables are read; the rest of a system file may use TOML this reader lacks.
    if (table === "other") continue;
    const match = /^([A-Za-z0-9_-]+)\s*=\s*(.+)$/.exec(line);
    if (match === null) throw configError(source, `${where}: cannot read "${line.slice(0, 60)}"`);
    const key = match[1] ?? "";
    const value = parseValue(match[2] ?? "", source, where);
    const target = table === "mirror" ? mirror : registry;
    if (target === undefined) continue;
    if (key === "location" || key === "prefix") {
      if (typeof value !== "string") throw configError(source, `${where}: ${key} must be a string`);
      if (key === "prefix" && table === "mirror") continue;
      (target as { location?: string; prefix?: string })[key] = value;
    } else if (key === "insecure" && table === "mirror") {
      if (typeof value !== "boolean") throw configError(source, `${where}: insecure must be true or false`);
      (target as { insecure: boolean }).insecure = value;
    }
  }
  flushRegistry();
  return { rules };
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
 * (with the matched prefix replaced by each mirror's location), then the origin itself.
 */
export function pullEndpoints(config: MirrorConfig | undefined, registry: string, repository: string): PullEndpoint[] {
  const origin: PullEndpoint = { registry, repository, insecure: false, mirror: false };
  if (config === undefined) return [origin];
  const name = `${registry.toLowerCase()}/${repository}`;
  let best: MirrorRule | undefined;
  for (const rule of config.rules) {
    const prefix = rule.prefix.toLowerCase();
    if (name === prefix || name.startsWith(`${prefix}/`) || (!prefix.includes("/") && registry.toLowerCase() === prefix)) {
      if (best === undefined || rule.prefix.length > best.prefix.length) best = rule;
    }
  }
  if (best === undefined) return [origin];
  const rest = name.slice(best.prefix.length).replace(/^\//, "");
  const endpoints = best.mirrors.map((mirror) => {
    const slash = mirror.location.indexOf("/");
    const host = slash < 0 ? mirror.location : mirror.location.slice(0, slash);
    const path = slash < 0 ? "" : mirror.location.slice(slash + 1);
    return { registry: host, repository: [path, rest].filter((part) => part !== "").join("/"), insecure: mirror.insecure, mirror: true };
  });
  return [...endpoints, origin];
}

function normaliseLocation(location: string): string {
  return location
    .trim()
    .replace(/^[a-z]+:\/\//i, "")
    .replace(/\/+$/, "");
}

function stripComment(line: string): string {
  let inString = false;
  for (let index = 0; index < line.length; index++) {
    const char = line.charAt(index);
    if (char === '"' && line.charAt(index - 1) !== "\\") inString = !inString;
    if (char === "#" && !inString) return line.slice(0, index);
  }
  return line;
}

function parseValue(text: string, source: string, where: string): string | boolean | number | unknown[] {
  const trimmed = text.trim();
  if (trimmed === "true") return true;
  if (trimmed === "false") return false;
  if (/^-?\d+$/.test(trimmed)) return Number(trimmed);
  if (trimmed.startsWith('"') && trimmed.endsWith('"') && trimmed.length >= 2) {
    try {
      return JSON.parse(trimmed) as string;
    } catch (cause) {
      throw new OcibootError("USAGE", `Cannot read ${source}: ${where}: invalid string`, { cause });
    }
  }
  if (trimmed.startsWith("'") && trimmed.endsWith("'") && trimmed.length >= 2) return trimmed.slice(1, -1);
  if (trimmed.startsWith("[")) return [];
  throw configError(source, `${where}: unsupported value ${trimmed.slice(0, 40)}`);
}

function configError(source: string, detail: string): OcibootError {
  return new OcibootError("USAGE", `Cannot read registry configuration ${source}: ${detail}`);
}
