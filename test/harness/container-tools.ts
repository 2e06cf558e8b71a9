import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runOk, type RunResult } from "./commands.ts";
import { fetchWithSkopeo, type RegistryEndpoint } from "./images.ts";

/** The files of a container image as `umoci unpack` lays out its root file system. */
export interface UnpackedImage {
  readFile(path: string): Promise<string>;
  remove(): Promise<void>;
}

/**
 * Copies `REPOSITORY:TAG` from `registry` into an OCI layout with skopeo and unpacks it with
 * umoci (rootless, so file owners need no privileges): what a container runtime would see.
 */
export async function unpackWithUmoci(registry: RegistryEndpoint, repository: string, tag: string): Promise<UnpackedImage> {
  const work = await mkdtemp(join(tmpdir(), "ociboot-umoci-"));
  try {
    await fetchWithSkopeo(registry, repository, tag, join(work, "layout"), { layoutTag: "image" });
    await runOk("umoci", ["unpack", "--rootless", "--image", `${join(work, "layout")}:image`, join(work, "bundle")]);
  } catch (error) {
    await rm(work, { recursive: true, force: true });
    throw error;
  }
  return {
    readFile: (path) => readFile(join(work, "bundle", "rootfs", path), "utf8"),
    remove: () => rm(work, { recursive: true, force: true }),
  };
}

/**
 * `podman pull` from a plain-HTTP loopback registry, with storage, run state and registries.conf
 * of its own (docs/architecture.md#tests: --root/--runroot/--tmpdir, insecure=true through CONTAINERS_REGISTRIES_CONF),
 * so nothing of the machine's podman setup takes part. Returns the pull's result and the image
 * as `podman image inspect` describes it.
 */
export async function pullWithPodman(registry: RegistryEndpoint, reference: string): Promise<{ pull: RunResult; inspect: Record<string, unknown> }> {
  const work = await mkdtemp(join(tmpdir(), "ociboot-podman-"));
  try {
    const registries = join(work, "registries.conf");
    await writeFile(registries, `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
    const podman = (args: string[]) =>
      runOk("podman", ["--root", join(work, "root"), "--runroot", join(work, "runroot"), "--tmpdir", join(work, "tmp"), ...args], {
        env: { CONTAINERS_REGISTRIES_CONF: registries },
        timeoutMs: 60_000,
      });
    const pull = await podman(["pull", "--quiet", reference]);
    const inspected = JSON.parse((await podman(["image", "inspect", reference])).stdout) as Array<Record<string, unknown>>;
    return { pull, inspect: inspected[0] ?? {} };
  } finally {
    // podman leaves read-only layer directories; rm -rf copes where rm with force alone may not.
    await runOk("rm", ["-rf", work]).catch(() => undefined);
  }
}
