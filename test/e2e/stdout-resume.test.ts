import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { type RandomFile } from "../harness/images.ts";
import { type RecordingProxy } from "../harness/recording-proxy.ts";
import { type RelayedBootImage, startRelayedBootImage } from "../harness/relayed-boot-image.ts";
import { OCIBOOT_BINARY } from "./ociboot-binary.ts";

const MiB = 1024 * 1024;

describe("fetch --role R -o - continues a cut transfer", () => {
  let work: string;
  let relay: RecordingProxy;
  let rootfs: RandomFile;

  let image: RelayedBootImage;

  beforeAll(async () => {
    image = await startRelayedBootImage("e2e-stdout-resume", "os/pipe", 20 * MiB);
    ({ work, relay, rootfs } = image);
  }, 120_000);
  afterAll(async () => {
    await image?.stop();
  });

  it("writes the whole blob to the pipe, asking the registry only for the rest after the cut", async () => {
    const rootfsPath = new RegExp(`/blobs/sha256(:|%3A)${rootfs.digest.slice(7)}`);
    relay.inject({ method: "GET", path: rootfsPath, fault: { kind: "cut", afterBytes: 7 * MiB } });
    const out = join(work, "rootfs.out");
    const result = await run("sh", ["-c", `"$0" fetch "$1" --role rootfs -o - > "$2"`, OCIBOOT_BINARY, `${relay.host}/os/pipe:v1`, out], {
      env: { HOME: "/nonexistent" },
      timeoutMs: 120_000,
    });
    expect(result.code, result.stderr).toBe(0);
    const hash = createHash("sha256");
    for await (const chunk of createReadStream(out)) hash.update(chunk as Buffer);
    expect(`sha256:${hash.digest("hex")}`).toBe(rootfs.digest);

    const gets = relay.requests.filter((request) => request.method === "GET" && rootfsPath.test(request.path));
    expect(gets.map((request) => request.fault)).toEqual(["cut", undefined]);
    const resumedFrom = Number(/^bytes=(\d+)-$/.exec(String(gets[1]?.headers.range))?.[1]);
    // Bytes already in the pipe are not asked for again (a restart would be a second GET from 0).
    expect(resumedFrom).toBeGreaterThan(5 * MiB);
    expect(resumedFrom).toBeLessThanOrEqual(7 * MiB);
  });
});
