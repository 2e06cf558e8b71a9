import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { RunningRegistry } from "./registry.ts";

/**
 * Writes `DIRECTORY/config.json` in the Docker CLI format with the credentials of each registry
 * (`{"auths": {"127.0.0.1:PORT": {"auth": base64("user:password")}}}`), for tests that run a client
 * with `DOCKER_CONFIG=DIRECTORY`. Registries without credentials are left out. Returns the file path.
 */
export async function writeDockerConfig(
  directory: string,
  registries: ReadonlyArray<Pick<RunningRegistry, "host" | "credentials">>,
): Promise<string> {
  const auths: Record<string, { auth: string }> = {};
  for (const registry of registries) {
    if (registry.credentials === undefined) continue;
    const { username, password } = registry.credentials;
    auths[registry.host] = { auth: Buffer.from(`${username}:${password}`, "utf8").toString("base64") };
  }
  await mkdir(directory, { recursive: true });
  const path = join(directory, "config.json");
  await writeFile(path, `${JSON.stringify({ auths }, null, 2)}\n`, { mode: 0o600 });
  return path;
}
