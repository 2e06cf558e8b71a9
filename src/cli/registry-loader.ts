/**
 * The registry client brings in undici, by far the largest module of the bundle: commands load it
 * when they first talk to a registry, so `--help`, `--version` and local commands start fast.
 */
export async function loadRegistryClient() {
  const repository = await import("../registry/repository.ts");
  return {
    openRepository: repository.openRepository,
    closeRegistryConnections: repository.closeRegistryConnections,
    checkLogin: repository.checkLogin,
  };
}
