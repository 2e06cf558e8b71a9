import { spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { resumablePrefixLength } from "../../src/content/blob-writer.ts";
import { type RandomFile } from "../harness/images.ts";
import { type RecordingProxy, type RelayedRequest } from "../harness/recording-proxy.ts";
import { type RelayedBootImage, startRelayedBootImage } from "../harness/relayed-boot-image.ts";
import { OCIBOOT_BINARY, ociboot } from "./ociboot-binary.ts";

const MiB = 1024 * 1024;
const STALL_AT = 20 * MiB;
/** The first run is killed once its partial file holds this much: well below where the relay stalls it. */
const KILL_AT = 12 * MiB;

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return `sha256:${hash.digest("hex")}`;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const sizeAtLeast = (path: string, bytes: number) => async () => {
  const size = (await stat(path).catch(() => undefined))?.size ?? 0;
  return size >= bytes ? size : undefined;
};

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
}

/**
 * A pull (or copy) into a store that is killed mid-blob continues in the next run from the bytes
 * its per-digest partial file kept: the relay stalls the rootfs GET after 20 MiB, the test kills
 * the process once 12 MiB reached the partial file, and the next run asks only for the rest.
 */
describe("pull and copy into a store killed mid-blob resume in the next run", () => {
  let work: string;
  let relay: RecordingProxy;
  let rootfs: RandomFile;
  let image: RelayedBootImage;

  beforeAll(async () => {
    image = await startRelayedBootImage("e2e-pull-resume", "os/big", 40 * MiB);
    ({ work, relay, rootfs } = image);
  }, 120_000);
  afterAll(async () => {
    await image?.stop();
  });
  beforeEach(() => {
    relay.requests.length = 0;
    relay.inject({ method: "GET", path: image.rootfsPath, fault: { kind: "stall", afterBytes: STALL_AT } });
  });

  const rootfsGets = (): RelayedRequest[] => relay.requests.filter((request) => request.method === "GET" && image.rootfsPath.test(request.path));
  const partialOf = (store: string) => join(store, ".ociboot", "tmp", `partial-sha256-${rootfs.digest.slice(7)}`);

  /** Starts `args`, waits until the rootfs partial file in `store` holds KILL_AT bytes, kills the process; returns the bytes kept. */
  async function killMidBlob(store: string, args: string[]): Promise<number> {
    const first = spawn(OCIBOOT_BINARY, args, { stdio: "ignore", env: { HOME: "/nonexistent" } });
    const exited = exitOf(first);
    await waitFor("the partial file", sizeAtLeast(partialOf(store), KILL_AT), 60_000);
    first.kill("SIGKILL");
    expect((await exited).signal).toBe("SIGKILL");
    expect(existsSync(join(store, "blobs", "sha256", rootfs.digest.slice(7)))).toBe(false);
    return (await stat(partialOf(store))).size;
  }

  async function expectStoredAndClean(store: string): Promise<void> {
    expect(await sha256File(join(store, "blobs", "sha256", rootfs.digest.slice(7)))).toBe(rootfs.digest);
    // The partial file became the blob; its lock (left by the killed run) is gone too.
    const temporary = join(store, ".ociboot", "tmp");
    // Left by the killed run at most: a lock, or a lock's scratch copy if the kill landed while a lock was being taken.
    expect((await readdir(temporary)).filter((name) => !name.endsWith(".lock") && !/\.lock\.[0-9a-f-]+\.new$/.test(name))).toEqual([]);
    expect(existsSync(`${partialOf(store)}.lock`)).toBe(false);
    const verified = await ociboot(["verify", `oci:${store}`]);
    expect(verified.code, verified.stderr).toBe(0);
    // A run killed between storing a small blob and unlocking it may have left that lock: prune clears it, and nothing else goes.
    const pruned = await ociboot(["--store-path", store, "prune", "--grace", "0", "--json"]);
    expect(JSON.parse(pruned.stdout)).toMatchObject({ removed: 0, removedPartials: 0 });
    expect(await readdir(temporary)).toEqual([]);
  }

  function expectOnlyTheRestAsked(kept: number): void {
    const gets = rootfsGets();
    expect(gets.map((request) => request.fault)).toEqual(["stall", undefined]);
    expect(gets[0]?.headers.range).toBeUndefined();
    // The kept bytes were hashed again and built on; only a directly written file's unordered tail is asked for again.
    const trusted = resumablePrefixLength(kept, rootfs.size);
    expect(trusted).toBeGreaterThan(KILL_AT - 8 * MiB);
    expect(gets[1]?.headers.range).toBe(`bytes=${trusted}-`);
    expect(gets[1]?.status).toBe(206);
  }

  it("pull", async () => {
    const store = join(work, "pulled");
    const reference = `${relay.host}/os/big:v1`;
    const kept = await killMidBlob(store, ["--store-path", store, "pull", reference, "--quiet"]);
    const second = await ociboot(["--store-path", store, "pull", reference, "--json"]);
    expect(second.code, second.stderr).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ reference });
    expectOnlyTheRestAsked(kept);
    await expectStoredAndClean(store);
  }, 120_000);

  it("copy into oci:DIR", async () => {
    const store = join(work, "copied");
    const args = ["copy", `${relay.host}/os/big:v1`, `oci:${store}:os/big:v1`, "--quiet"];
    const kept = await killMidBlob(store, args);
    const second = await ociboot(args);
    expect(second.code, second.stderr).toBe(0);
    expectOnlyTheRestAsked(kept);
    await expectStoredAndClean(store);
  }, 120_000);

  it("a second pull of the same blob waits for the first and never writes beside it", async () => {
    const store = join(work, "together");
    const reference = `${relay.host}/os/big:v1`;
    const partial = partialOf(store);
    const first = spawn(OCIBOOT_BINARY, ["--store-path", store, "pull", reference, "--quiet"], { stdio: "ignore", env: { HOME: "/nonexistent" } });
    const firstExited = exitOf(first);
    await waitFor("the partial file", sizeAtLeast(partial, KILL_AT), 60_000);
    const owner = JSON.parse(await readFile(`${partial}.lock`, "utf8")) as { pid: number };
    expect(owner.pid).toBe(first.pid);

    // The second pull reaches the rootfs while the first, stalled, holds its lock: it asks for nothing meanwhile.
    const manifestGets = () => relay.requests.filter((request) => request.method === "GET" && /\/manifests\//.test(request.path)).length;
    const firstRunGets = manifestGets();
    const second = ociboot(["--store-path", store, "pull", reference, "--json"]);
    await waitFor("the second pull's manifest", async () => (manifestGets() > firstRunGets ? true : undefined), 60_000);
    expect(rootfsGets()).toHaveLength(1);
    first.kill("SIGKILL");
    await firstExited;
    const kept = (await stat(partial)).size;

    // Once the holder is gone its lock is stale: the second pull takes it and continues the first one's file.
    const result = await second;
    expect(result.code, result.stderr).toBe(0);
    expect(rootfsGets()).toHaveLength(2);
    expect(rootfsGets()[1]?.headers.range).toBe(`bytes=${resumablePrefixLength(kept, rootfs.size)}-`);
    await expectStoredAndClean(store);
  }, 120_000);

  it("prune removes a partial file nobody resumed, not one a live pull holds", async () => {
    const store = join(work, "pruned");
    const reference = `${relay.host}/os/big:v1`;
    const first = spawn(OCIBOOT_BINARY, ["--store-path", store, "pull", reference, "--quiet"], { stdio: "ignore", env: { HOME: "/nonexistent" } });
    const exited = exitOf(first);
    await waitFor("the partial file", sizeAtLeast(partialOf(store), KILL_AT), 60_000);
    // Held by a live process: kept, whatever its age.
    const whileHeld = await ociboot(["--store-path", store, "prune", "--grace", "0", "--json"]);
    expect(whileHeld.code, whileHeld.stderr).toBe(0);
    expect(JSON.parse(whileHeld.stdout)).toMatchObject({ removedPartials: 0 });
    expect(existsSync(partialOf(store))).toBe(true);
    first.kill("SIGKILL");
    await exited;

    // Abandoned but younger than the grace period: kept for the next run to resume.
    expect(JSON.parse((await ociboot(["--store-path", store, "prune", "--json"])).stdout)).toMatchObject({ removedPartials: 0 });
    const pruned = await ociboot(["--store-path", store, "prune", "--grace", "0"]);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(pruned.stdout).toMatch(/1 abandoned partial download \(/);
    expect(await readdir(join(store, ".ociboot", "tmp"))).toEqual([]);
  }, 120_000);
});
