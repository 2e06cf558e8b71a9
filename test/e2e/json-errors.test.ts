import { cp, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";
import { ociboot } from "./ociboot-binary.ts";

interface ErrorDocument {
  error: { code: string; message: string; details: Record<string, unknown> };
}

/** The whole of stdout must be one JSON document naming the error; nothing else may precede it. */
function parseErrorDocument(stdout: string): ErrorDocument {
  const document = JSON.parse(stdout) as ErrorDocument;
  expect(Object.keys(document)).toEqual(["error"]);
  expect(Object.keys(document.error).sort()).toEqual(["code", "details", "message"]);
  expect(typeof document.error.message).toBe("string");
  expect(typeof document.error.details).toBe("object");
  return document;
}

describe("--json runs that fail print the error as JSON on stdout, with the usual exit code", () => {
  let work: string;
  let registry: RunningRegistry;
  let layout: WrittenLayout;
  let reference: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "ociboot-e2e-json-errors-"));
    registry = await startRegistry();
    layout = await writeOciLayout(join(work, "layout"), {
      manifests: [makeBootImage({ dialect: "onmetal", tag: "v1", kernel: { bytes: "K".repeat(4096) }, initrd: { bytes: "I".repeat(4096) }, rootfs: { bytes: "R".repeat(4096) }, commandLine: "console=ttyS0" })],
    });
    ({ reference } = await publishWithSkopeo(layout.directory, "v1", registry, "os/json"));
  });
  afterAll(async () => {
    await registry?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("a usage error: exit 2, code USAGE, and the same message as stderr", async () => {
    const result = await ociboot(["fetch", reference, "--json"]);
    expect(result.code).toBe(2);
    const { error } = parseErrorDocument(result.stdout);
    expect(error.code).toBe("USAGE");
    expect(error.message).toMatch(/--output/);
    expect(result.stderr).toBe(`ociboot: ${error.message}\n`);
  });

  it("a command without a --json option still answers in JSON when given one", async () => {
    // completion prints a shell script, so it has no --json of its own.
    const result = await ociboot(["completion", "tcsh", "--json"]);
    expect(result.code).toBe(2);
    expect(parseErrorDocument(result.stdout).error.code).toBe("USAGE");
  });

  it("a tag the registry does not have: exit 3, code NOT_FOUND", async () => {
    const result = await ociboot(["fetch", `${registry.host}/os/json:missing`, "-o", join(work, "missing"), "--json"]);
    expect(result.code, result.stderr).toBe(3);
    expect(parseErrorDocument(result.stdout).error.code).toBe("NOT_FOUND");
  });

  it("the same failure without --json prints nothing on stdout", async () => {
    const result = await ociboot(["fetch", `${registry.host}/os/json:missing`, "-o", join(work, "missing-text")]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    expect(result.stderr).toMatch(/^ociboot: /);
  });

  it("verify of a corrupted store: exit 5, one document whose details carry the failed items and the report", async () => {
    const copy = join(work, "corrupt");
    await cp(layout.directory, copy, { recursive: true });
    const kernel = layout.manifests[0]!.layers.find((layer) => layer.mediaType.includes("vmlinuz"))!;
    await writeFile(join(copy, "blobs", "sha256", kernel.digest.slice(7)), "k".repeat(4096));
    const result = await ociboot(["verify", `oci:${copy}`, "--json"]);
    expect(result.code).toBe(5);
    const { error } = parseErrorDocument(result.stdout);
    expect(error.code).toBe("INTEGRITY");
    expect(error.details["failed"]).toContain(kernel.digest);
    const report = error.details["report"] as { ok: boolean; items: Array<{ name: string; ok: boolean }> };
    expect(report.ok).toBe(false);
    expect(report.items.find((item) => item.name === kernel.digest)?.ok).toBe(false);
  });

  it("with -o -, stdout carries the file: the error document goes to stderr", async () => {
    const result = await ociboot(["fetch", `${registry.host}/os/json:missing`, "--role", "kernel", "-o", "-", "--json"]);
    expect(result.code).toBe(3);
    expect(result.stdout).toBe("");
    const [human, document] = result.stderr.trimEnd().split("\n");
    expect(human).toMatch(/^ociboot: /);
    expect(parseErrorDocument(document ?? "").error.code).toBe("NOT_FOUND");
  });

  it("a --json after -- is an argument, not the option", async () => {
    const result = await ociboot(["fetch", "-o", join(work, "dashdash"), "--", "--json"]);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
  });
});
