/**
 * Where each command appears in the top-level help, and which of the shared option sets it
 * accepts after its name. A command not listed here (a new one) lands under "Other commands:"
 * and accepts every shared option, as all commands once did, so nothing it relied on breaks.
 */

/** Shared option sets: `store` is `--store-path`; `registry` is TLS, mirrors and credentials. */
export type OptionSet = "store" | "registry";

export interface CommandPlacement {
  group: string;
  options: readonly OptionSet[];
}

export const Group = {
  bootFiles: "Boot files:",
  store: "Local store:",
  transfer: "Transfer:",
  referrers: "Referrers:",
  trust: "Trust:",
  login: "Registry login:",
  shell: "Shell:",
  other: "Other commands:",
} as const;

/** Groups in the order the top-level help shows them. */
export const GROUP_ORDER: readonly string[] = Object.values(Group);

const REGISTRY: readonly OptionSet[] = ["registry"];
const STORE: readonly OptionSet[] = ["store"];
const BOTH: readonly OptionSet[] = ["store", "registry"];
const NONE: readonly OptionSet[] = [];

export const PLACEMENTS: Readonly<Record<string, CommandPlacement>> = {
  fetch: { group: Group.bootFiles, options: REGISTRY },
  manifest: { group: Group.bootFiles, options: REGISTRY },
  digest: { group: Group.bootFiles, options: REGISTRY },
  tags: { group: Group.bootFiles, options: REGISTRY },
  url: { group: Group.bootFiles, options: REGISTRY },
  build: { group: Group.store, options: STORE },
  list: { group: Group.store, options: STORE },
  tag: { group: Group.store, options: STORE },
  inspect: { group: Group.store, options: STORE },
  delete: { group: Group.store, options: STORE },
  prune: { group: Group.store, options: STORE },
  import: { group: Group.store, options: STORE },
  "info-image": { group: Group.store, options: STORE },
  copy: { group: Group.transfer, options: REGISTRY },
  push: { group: Group.transfer, options: BOTH },
  pull: { group: Group.transfer, options: BOTH },
  pack: { group: Group.transfer, options: NONE },
  attach: { group: Group.referrers, options: REGISTRY },
  discover: { group: Group.referrers, options: REGISTRY },
  verify: { group: Group.trust, options: REGISTRY },
  sign: { group: Group.trust, options: REGISTRY },
  login: { group: Group.login, options: REGISTRY },
  logout: { group: Group.login, options: NONE },
  completion: { group: Group.shell, options: NONE },
  version: { group: Group.shell, options: NONE },
};

/** The placement of a command by name; unknown commands accept every shared option. */
export function placementOf(name: string): CommandPlacement {
  return PLACEMENTS[name] ?? { group: Group.other, options: BOTH };
}
