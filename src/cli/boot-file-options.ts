import { Option } from "@commander-js/extra-typings";
import { OcibootError } from "../errors.ts";
import { ROLES, type Role } from "../oci/dialects.ts";
import { parsePlatform } from "../oci/platform.ts";
import type { ManifestSelection } from "../ops/resolve.ts";
import { completesAsList } from "./completion.ts";
import { defaultPlatform } from "./sources.ts";

/** Options shared by the commands that pick an image from an index and name its files by role. */
export const platformOption = (fallback = "this machine's architecture") =>
  new Option("--platform <os/arch[/variant]>", `platform to pick from a multi-arch index (default: ${fallback})`);
export const flavorOption = () =>
  new Option("--flavor <cname>", "Garden Linux flavor (cname annotation) to pick from an index; a cname that names one entry needs no --platform");
export const roleOption = () => completesAsList(new Option("--role <roles>", `only these roles, comma-separated (${ROLES.join(", ")})`), ROLES);
export const nameOption = () =>
  new Option("--name <role=file>", "file name for a role, e.g. kernel=bzImage (repeatable)")
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
    .default([] as string[]);

/** The index choice the user asked for; this machine's platform only where the user named none. */
export function selectionFrom(options: { platform?: string; flavor?: string }): ManifestSelection {
  return {
    ...(options.platform ? { platform: parsePlatform(options.platform) } : { hostPlatform: defaultPlatform() }),
    ...(options.flavor !== undefined ? { flavor: options.flavor } : {}),
  };
}

/** The index choice exactly as given: none at all means the index itself (manifest, digest). */
export function explicitSelection(options: { platform?: string; flavor?: string }): ManifestSelection {
  return {
    ...(options.platform !== undefined ? { platform: parsePlatform(options.platform) } : {}),
    ...(options.flavor !== undefined ? { flavor: options.flavor } : {}),
  };
}

export function parseRoles(text: string): Role[] {
  const roles = text.split(",").map((role) => role.trim()).filter((role) => role.length > 0);
  for (const role of roles) {
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new OcibootError("USAGE", `Cannot use --role ${role}: choose from ${ROLES.join(", ")}`);
    }
  }
  return roles as Role[];
}

export function parseNames(entries: readonly string[]): Partial<Record<Role, string>> {
  const names: Partial<Record<Role, string>> = {};
  for (const entry of entries) {
    const [role, name] = entry.split("=", 2);
    if (!role || !name || !(ROLES as readonly string[]).includes(role)) {
      throw new OcibootError("USAGE", `Cannot use --name ${entry}: expected ROLE=FILE with ROLE one of ${ROLES.join(", ")}`);
    }
    names[role as Role] = name;
  }
  return names;
}
