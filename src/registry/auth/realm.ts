import { lookup } from "node:dns/promises";
import ipaddr from "ipaddr.js";
import { OcibootError } from "../../errors.ts";
import { redactUrl } from "../transport.ts";

/** What kind of place a host is, as far as sending credentials there goes. */
export type HostKind = "unspecified" | "link-local" | "loopback" | "elsewhere";

/** Resolves a host name to its addresses; injectable so tests need no DNS. */
export type HostResolver = (hostname: string) => Promise<string[]>;

const systemResolver: HostResolver = async (hostname) => (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

/**
 * The kind of a URL host (`URL.hostname`, IPv6 in brackets) by its text alone: an IP address by its
 * range (IPv4-mapped IPv6 as the IPv4 address it carries), `localhost` and `*.localhost` as
 * loopback (RFC 6761 §6.3), any other name as "elsewhere".
 */
export function hostKind(hostname: string): HostKind {
  const bare = hostname.toLowerCase().replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (bare === "localhost" || bare.endsWith(".localhost")) return "loopback";
  if (!ipaddr.isValid(bare)) return "elsewhere";
  const range = ipaddr.process(bare).range();
  if (range === "unspecified") return "unspecified";
  if (range === "linkLocal") return "link-local";
  if (range === "loopback") return "loopback";
  return "elsewhere";
}

/** The kinds of a host: its own, and for a name also those of the addresses it resolves to now. */
async function hostKinds(hostname: string, resolve: HostResolver): Promise<HostKind[]> {
  const kind = hostKind(hostname);
  if (kind !== "elsewhere" || ipaddr.isValid(hostname.replace(/^\[(.*)\]$/, "$1"))) return [kind];
  let addresses: string[];
  try {
    addresses = await resolve(hostname);
  } catch {
    // Unresolvable here (a proxy may resolve it): the request itself will tell.
    return [kind];
  }
  return addresses.length === 0 ? [kind] : addresses.map(hostKind);
}

/**
 * Refuses a token realm that would carry the saved login somewhere a registry has no business
 * sending it: the unspecified address (`0.0.0.0`, `::`, which reaches this machine), a link-local
 * address (`169.254.169.254` is the cloud metadata service; `fe80::/10`), or loopback when the
 * registry is not on loopback itself. The registry's own host name is always allowed, and so is
 * loopback when both are. Names are judged by the addresses they resolve to now as well
 * (docs/token-realm.md).
 *
 * @throws OcibootError UNAUTHORIZED naming the realm, before any request is made.
 */
export async function checkTokenRealm(realm: URL, registryUrl: URL, resolve: HostResolver = systemResolver): Promise<void> {
  if (realm.hostname.toLowerCase() === registryUrl.hostname.toLowerCase()) return;
  const realmKinds = await hostKinds(realm.hostname, resolve);
  const refuse = (why: string): never => {
    throw new OcibootError(
      "UNAUTHORIZED",
      `Cannot authenticate to ${registryUrl.host}: its token realm ${redactUrl(realm)} is ${why}; refusing to send credentials there`,
    );
  };
  if (realmKinds.includes("unspecified")) refuse("the unspecified address (this machine)");
  if (realmKinds.includes("link-local")) refuse("a link-local address (such as a cloud metadata service)");
  if (realmKinds.includes("loopback")) {
    const registryKinds = await hostKinds(registryUrl.hostname, resolve);
    if (!registryKinds.every((kind) => kind === "loopback")) refuse(`on loopback while the registry ${registryUrl.host} is not`);
  }
}
