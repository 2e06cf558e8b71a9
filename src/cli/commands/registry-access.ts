import { parseReference, type Reference } from "../../oci/reference.ts";
import type { RegistryRepository } from "../../registry/repository.ts";
import type { CliContext } from "../context.ts";
import type { GlobalOptions } from "../global-options.ts";
import { loadRegistryClient } from "../registry-loader.ts";
import { registryOptionsFrom } from "../registry-options.ts";

/** Opens the registry repository a reference names, runs `action`, then closes idle connections. */
export async function withRepository<T>(
  name: string,
  global: GlobalOptions,
  context: CliContext,
  action: (repository: RegistryRepository, reference: Reference) => Promise<T>,
): Promise<T> {
  const reference = parseReference(name);
  const options = await registryOptionsFrom(global, context);
  const { closeRegistryConnections, openRepository } = await loadRegistryClient();
  try {
    return await action(openRepository(reference, options), reference);
  } finally {
    await closeRegistryConnections(options);
  }
}
