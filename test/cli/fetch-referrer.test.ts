import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeBootImage, publishWithSkopeo, writeOciLayout } from "../harness/images.ts";
import { type RunningRegistry, startRegistry } from "../harness/registry.ts";
import { runInProcess } from "./cli-context.ts";

let registry: RunningRegistry;
let work: string;
let image: string;

const cli = (argv: string[], env: Record<string, string> = {}) => runInProcess(argv, { cwd: work, env });

async function attach(reference: string, file: string, type: string, epoch: string): Promise<string> {
  const result = await cli(["attach", reference, file, "--artifact-type", type, "--json"], { SOURCE_DATE_EPOCH: epoch });
  expect(result.code, result.stderr).toBe(0);
  return (JSON.parse(result.stdout) as { digest: string }).digest;
}

let newest: string;
let older: string;

beforeAll(async () => {
  registry = await startRegistry();
  work = await mkdtemp(join(tmpdir(), "ociboot-fetch-referrer-"));
  await writeOciLayout(join(work, "layout"), {
    manifests: [{ ...makeBootImage({ dialect: "onmetal", kernel: { bytes: "k" }, initrd: { bytes: "i" }, rootfs: { bytes: "r" } }), tag: "v1" }],
  });
  image = (await publishWithSkopeo(join(work, "layout"), "v1", registry, "os/metal")).reference;
  for (const build of ["new", "old"]) {
    await mkdir(join(work, build));
    await writeFile(join(work, build, "metal.log"), `log of the ${build} build\n`);
  }
  await writeFile(join(work, "metal.os-release"), "ID=gardenlinux\n");
  // Attached newest first: "newest" must come from the created time, not from the listing order.
  newest = await attach(image, join(work, "new", "metal.log"), "build/log", "1700000300");
  older = await attach(image, join(work, "old", "metal.log"), "build/log", "1700000200");
  await attach(image, join(work, "metal.os-release"), "build/os-release", "1700000100");
});
afterAll(async () => {
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

describe("fetch --referrer", () => {
  it("writes the files of the newest referrer of the type under their titles, verified", async () => {
    expect(newest).not.toBe(older);
    const result = await cli(["fetch", image, "--referrer", "build/log", "-o", "logs"]);
    expect(result.code, result.stderr).toBe(0);
    expect(await readdir(join(work, "logs"))).toEqual(["metal.log"]);
    expect(await readFile(join(work, "logs", "metal.log"), "utf8")).toBe("log of the new build\n");
    expect(result.stdout).toMatch(new RegExp(`^${join(work, "logs", "metal.log")}\\tsha256:[0-9a-f]{64}\\t21\\n$`));

    const release = await cli(["fetch", image, "--referrer", "build/os-release", "-o", "logs", "--json"]);
    const report = JSON.parse(release.stdout) as { referrers: Array<{ files: Array<{ name: string; status: string }> }> };
    expect(report.referrers.flatMap((referrer) => referrer.files.map((file) => [file.name, file.status]))).toEqual([["metal.os-release", "downloaded"]]);
  });

  it("writes every referrer of the type with --all, each in a folder named by its digest", async () => {
    const result = await cli(["fetch", image, "--referrer", "build/log", "--all", "-o", "all-logs"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await readdir(join(work, "all-logs"))).sort()).toEqual([newest, older].map((digest) => digest.replace(":", "-")).sort());
    expect(await readFile(join(work, "all-logs", older.replace(":", "-"), "metal.log"), "utf8")).toBe("log of the old build\n");
  });

  it("fetches one referrer by its own digest as any artifact (titled layers), and exits 3 for a type nobody attached", async () => {
    const byDigest = await cli(["fetch", `${registry.host}/os/metal@${older}`, "-o", "by-digest"]);
    expect(byDigest.code, byDigest.stderr).toBe(0);
    expect(await readFile(join(work, "by-digest", "metal.log"), "utf8")).toBe("log of the old build\n");

    const missing = await cli(["fetch", image, "--referrer", "build/sbom", "-o", "none"]);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain("no referrer of type build/sbom");
    expect(existsSync(join(work, "none"))).toBe(false);
    for (const extra of [["--platform", "linux/amd64"], ["--role", "kernel"], ["--all", "-o", "-"]]) {
      const refused = await cli(["fetch", image, "--referrer", "build/log", "-o", "none", ...extra]);
      expect(refused.code, extra.join(" ")).toBe(2);
    }
    expect((await cli(["fetch", image, "--all", "-o", "none"])).code).toBe(2);
    expect(existsSync(join(work, "none"))).toBe(false);
  });

  it("refuses a referrer whose title is a path, writing nothing", async () => {
    const hostile = join(work, "hostile");
    const subject = { mediaType: "application/vnd.oci.image.manifest.v1+json", ...JSON.parse((await cli(["digest", image, "--json"])).stdout) };
    await writeOciLayout(hostile, {
      manifests: [
        {
          tag: "evil",
          artifactType: "build/log",
          config: { mediaType: "application/vnd.oci.empty.v1+json", bytes: "{}" },
          layers: [{ mediaType: "text/plain", bytes: "owned\n", annotations: { "org.opencontainers.image.title": "../escaped.log" } }],
          subject,
          annotations: { "org.opencontainers.image.created": "2030-01-01T00:00:00Z" },
        },
      ],
    });
    const pushed = await cli(["copy", `oci:${hostile}:evil`, `${registry.host}/os/metal@${"sha256:" + "0".repeat(64)}`]);
    // Pushing by digest is refused (the digest differs), so push under a tag: ociboot adds it to the fallback tag.
    expect(pushed.code).toBe(2);
    expect((await cli(["copy", `oci:${hostile}:evil`, `${registry.host}/os/metal:evil`])).code).toBe(0);

    const result = await cli(["fetch", image, "--referrer", "build/log", "-o", "out/inner"]);
    expect(result.code).toBe(5);
    expect(result.stderr).toContain("path separator");
    expect(existsSync(join(work, "out", "escaped.log"))).toBe(false);
    expect(existsSync(join(work, "out", "inner"))).toBe(false);
  });
});
