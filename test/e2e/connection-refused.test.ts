import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { trackChild } from "../harness/processes.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { freePort, startSlowRelay } from "../harness/slow-relay.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

/**
 * A refused connection is retried with the transport's bounded backoff (5 attempts, 0.25 s doubling,
 * at most 3.75 s of waiting), like any other connection error: a rescue shell whose network or
 * registry is still coming up must not fail in a fraction of a second.
 */
describe("connection refused", () => {
  let work: string;
  let registry: RunningRegistry;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-refused-"));
    registry = await startRegistry();
    const layout = await writeOciLayout(join(work, "layout"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: randomBytes(1000) }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" } })],
    });
    await publishWithSkopeo(layout.directory, "v1", registry, "os/boot");
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("fetches from a registry that starts listening only after ociboot was refused", async () => {
    const port = await freePort();
    const out = join(work, "late");
    const child = spawn(OCIBOOT_BINARY, ["fetch", `127.0.0.1:${port}/os/boot:v1`, "-o", out, "--debug"], {
      env: { ...process.env, HOME: "/nonexistent" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    trackChild(child);
    let stderr = "";
    child.stderr.setEncoding("utf8");
    const refused = new Promise<void>((resolve) =>
      child.stderr.on("data", (text: string) => {
        stderr += text;
        if (/connection refused.*; retry 1 in/.test(stderr)) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    // The registry comes up on that port only once ociboot has met the closed port (and is waiting
    // out its first backoff, with at least 1.8 s of further retries ahead).
    await Promise.race([refused, exited]);
    const relay = await startSlowRelay(registry.host, { port });
    try {
      const code = await exited;
      expect(code, stderr).toBe(0);
      expect(stderr).toMatch(/connection refused/);
      expect((await readdir(out)).sort()).toEqual(expect.arrayContaining(["vmlinuz", "initrd", "rootfs"]));
    } finally {
      await relay.stop();
    }
  }, 60_000);

  it("gives up on a port that never opens with exit 7, after the bounded retries, in bounded time", async () => {
    const port = await freePort();
    const started = Date.now();
    const result = await ociboot(["fetch", `127.0.0.1:${port}/os/boot:v1`, "-o", join(work, "never"), "--debug"], { timeoutMs: 30_000 });
    const seconds = (Date.now() - started) / 1000;
    expect(result.code, result.stderr).toBe(7);
    expect(result.stderr).toMatch(/ociboot: Cannot reach 127\.0\.0\.1:\d+ .*connection refused/);
    // Four waits between five attempts: 1.9–3.8 s by the policy; never more retries than that.
    expect(result.stderr).toMatch(/retry 4 in/);
    expect(result.stderr).not.toMatch(/retry 5 in/);
    expect(seconds).toBeGreaterThan(1.8);
    expect(seconds).toBeLessThan(20);
  }, 60_000);
});
