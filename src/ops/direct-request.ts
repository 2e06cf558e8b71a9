import { type DirectRequest, isDirectRequester, type ReadableStore } from "../content/store.ts";
import { OcibootError } from "../errors.ts";
import type { Role } from "../oci/dialects.ts";
import { findLayer } from "./find-layer.ts";
import type { ManifestSelection } from "./resolve.ts";

/**
 * The URL and headers that fetch the manifest `reference` names, or its layer playing `role`
 * (an index narrowed by `selection` first), with any HTTP client. Only stores that serve content
 * over HTTP (a registry) can answer.
 */
export async function directRequestFor(
  store: ReadableStore,
  reference: string,
  options: { role?: Role; selection?: ManifestSelection; signal?: AbortSignal } = {},
): Promise<DirectRequest> {
  if (!isDirectRequester(store)) throw new OcibootError("USAGE", `Cannot print a URL for ${store.description}: only a registry serves content by URL`);
  const signal = options.signal ? { signal: options.signal } : {};
  if (options.role === undefined) return store.directRequest(reference, signal);
  const layer = await findLayer(store, reference, options.role, options.selection ?? {}, options.signal);
  return store.directRequest(layer, signal);
}
