import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { trackChild } from "../harness/processes.ts";
import { plainScreen, runInPty } from "../harness/pty.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

const ENV = { ...process.env, HOME: "/nonexistent" };

/**
 * Runs the binary with standard output a pipe whose reader is already gone (as `… | head -c 10`
 * is once head has its bytes): every write meets EPIPE, whatever the timing.
 */
async function runWithClosedStdout(args: readonly string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(OCIBOOT_BINARY, args, { env: ENV, stdio: ["ignore", "pipe", "pipe"] });
  trackChild(child);
  child.stdout.destroy();
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => void (stderr += text));
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once("close", (exitCode, exitSignal) => resolve([exitCode, exitSignal])));
  return { code, signal, stderr };
}

describe("standard output", () => {
  let work: string;
  let registry: RunningRegistry;
  let reference: string;
  let store: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-stdout-"));
    registry = await startRegistry();
    const layout = await writeOciLayout(join(work, "layout"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: randomBytes(3 * 1024 * 1024) }, initrd: { bytes: "initrd" }, rootfs: { bytes: "rootfs" } })],
    });
    reference = (await publishWithSkopeo(layout.directory, "v1", registry, "os/boot")).reference;
    store = join(work, "store");
    const pulled = await ociboot(["--store-path", store, "pull", reference]);
    expect(pulled.code, pulled.stderr).toBe(0);
  }, 60_000);
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  describe("a reader that went away: exit 141, nothing printed", () => {
    it("fetch --role kernel -o - | head -c 10", async () => {
      const result = await runWithClosedStdout(["fetch", reference, "--role", "kernel", "-o", "-"]);
      expect(result).toEqual({ code: 141, signal: null, stderr: "" });
    });

    it("the report of fetch -o DIR, list, inspect and url", async () => {
      for (const args of [
        ["fetch", reference, "-o", join(work, "boot"), "--quiet"],
        ["--store-path", store, "list"],
        ["--store-path", store, "inspect", reference],
        ["url", reference, "--layer", "kernel"],
      ]) {
        expect(await runWithClosedStdout(args), args.join(" ")).toEqual({ code: 141, signal: null, stderr: "" });
      }
    });

    it("in a shell pipeline with head, as a user types it", async () => {
      const script = `set -o pipefail; "$0" fetch "$1" --role kernel -o - 2>"$2" | head -c 10 | wc -c`;
      const { run } = await import("../harness/commands.ts");
      const result = await run("bash", ["-c", script, OCIBOOT_BINARY, reference, join(work, "pipeline.err")], { env: ENV });
      expect(result.stdout.trim()).toBe("10");
      expect(result.code).toBe(141);
      const { readFile } = await import("node:fs/promises");
      expect(await readFile(join(work, "pipeline.err"), "utf8")).toBe("");
    });
  });

  describe("-o - on a terminal", () => {
    it("is refused with a hint, before anything is fetched, and nothing binary reaches the screen", async () => {
      const blobGets = () => registry.requests().filter((request) => request.method === "GET" && request.uri.includes("/blobs/")).length;
      const before = blobGets();
      const run = runInPty(OCIBOOT_BINARY, ["fetch", reference, "--role", "kernel", "-o", "-"], { env: ENV, timeoutSeconds: 30 });
      const { code, screen } = await run.exited;
      expect(code, screen).toBe(2);
      expect(plainScreen(screen).trim()).toBe("ociboot: Cannot write a binary file to a terminal: redirect standard output (-o - > vmlinuz) or use -o DIR (see ociboot fetch --help)");
      expect(blobGets()).toBe(before);
    });

    it("--help says that the bytes stream before the digest is checked, so the exit status must be checked", async () => {
      const help = await ociboot(["fetch", "--help"]);
      expect(help.code).toBe(0);
      expect(help.stdout.replace(/\s+/g, " ")).toMatch(/-o - the bytes stream out before their digest is checked.*exit status 0 alone says they are the published ones/);
    });
  });
});
