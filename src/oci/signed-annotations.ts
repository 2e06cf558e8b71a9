import type { Descriptor, Platform } from "./descriptor.ts";
import { GardenLinuxAnnotation } from "./dialects.ts";
import { flavorMatches, normalizeArchitecture } from "./platform.ts";

/** What the user asked for, to be compared with what a signed manifest says about itself. */
export interface SignedSelection {
  platform?: Platform;
  flavor?: string;
  /** The tag the user named (Garden Linux tags its version index with the version). */
  tag?: string;
}

const COMPARED = [
  GardenLinuxAnnotation.cname,
  GardenLinuxAnnotation.architecture,
  GardenLinuxAnnotation.version,
  GardenLinuxAnnotation.featureSet,
  GardenLinuxAnnotation.commit,
] as const;
const VERSION_TAG = /^\d+(?:\.\d+)*$/;

/**
 * Garden Linux signs its flavor manifests but not the version index that lists them, so the index
 * entry that selected a signed manifest is untrusted (docs/trust.md). This compares the signed
 * manifest's own annotations (`cname`, `architecture`, `version`, `feature_set`, `commit`, where
 * present) with the index entry (its annotations, platform architecture and `os.version`) and with
 * what the user asked for (flavor, platform, a version-like tag). A manifest reached without an
 * index is not compared: the user named it directly.
 *
 * @returns the disagreements, in words; empty when everything present agrees.
 */
export function checkSignedAnnotations(signed: Readonly<Record<string, string>>, entry: Descriptor, selection: SignedSelection): string[] {
  const problems: string[] = [];
  const signedArchitecture = signed[GardenLinuxAnnotation.architecture];
  {
    for (const key of COMPARED) {
      const claimed = entry.annotations?.[key];
      const actual = signed[key];
      if (claimed !== undefined && actual !== undefined && claimed !== actual) {
        problems.push(`the signed manifest has ${key} ${JSON.stringify(actual)} where the index entry says ${JSON.stringify(claimed)}`);
      }
    }
    const entryArchitecture = entry.platform?.architecture;
    if (signedArchitecture !== undefined && entryArchitecture !== undefined && !sameArchitecture(signedArchitecture, entryArchitecture)) {
      problems.push(`the signed manifest has architecture ${JSON.stringify(signedArchitecture)} where the index entry's platform says ${JSON.stringify(entryArchitecture)}`);
    }
    const entryVersion = entry.platform?.["os.version"];
    const signedVersion = signed[GardenLinuxAnnotation.version];
    if (signedVersion !== undefined && entryVersion !== undefined && entryVersion !== signedVersion) {
      problems.push(`the signed manifest has version ${JSON.stringify(signedVersion)} where the index entry's platform says ${JSON.stringify(entryVersion)}`);
    }
  }
  if (selection.flavor !== undefined && signed[GardenLinuxAnnotation.cname] !== undefined && !flavorMatches(selection.flavor, { mediaType: "", digest: "" as Descriptor["digest"], size: 0, annotations: { ...signed } })) {
    problems.push(`the signed manifest has cname ${JSON.stringify(signed[GardenLinuxAnnotation.cname])}, not the flavor ${JSON.stringify(selection.flavor)} asked for`);
  }
  if (selection.platform !== undefined && signedArchitecture !== undefined && !sameArchitecture(signedArchitecture, selection.platform.architecture)) {
    problems.push(`the signed manifest has architecture ${JSON.stringify(signedArchitecture)}, not the ${JSON.stringify(selection.platform.architecture)} asked for`);
  }
  const signedVersion = signed[GardenLinuxAnnotation.version];
  if (selection.tag !== undefined && VERSION_TAG.test(selection.tag) && signedVersion !== undefined && signedVersion !== selection.tag) {
    problems.push(`the signed manifest has version ${JSON.stringify(signedVersion)}, not the ${JSON.stringify(selection.tag)} the tag names`);
  }
  return problems;
}

function sameArchitecture(left: string, right: string): boolean {
  return normalizeArchitecture(left).architecture === normalizeArchitecture(right).architecture;
}
