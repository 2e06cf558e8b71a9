/**
 * The registry client brings in undici, by far the largest module of the bundle: commands load it
 * when they first talk to a registry, so `--help`, `--version` and local commands start fast.
 */
export async function loadRegistryClient() {
  const [repository, authorizer] = await Promise.all([import("../registry/repository.ts"), import("../registry/auth/authorizer.ts")]);
  return {
    openRepository: repository.openRepository,
    closeRegistryConnections: repository.closeRegistryConnections,
    checkLogin: repository.checkLogin,
    repositoryScope: authorizer.repositoryScope,
  };
}
