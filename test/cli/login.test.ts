import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../../src/cli/context.ts";
import { runCli } from "../../src/cli/program.ts";
import { exitCodeFor, OcibootError } from "../../src/errors.ts";
import { openRepository } from "../../src/registry/repository.ts";
import { run } from "../harness/commands.ts";
import { makeBootImage, publishWithSkopeo, writeOciLayout, type WrittenLayout } from "../harness/images.ts";
import { startRegistry, type RunningRegistry } from "../harness/registry.ts";

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI in-process with a given standard input, as main.ts would. */
async function ociboot(argv: string[], options: { cwd: string; env: Record<string, string>; stdin?: string }): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const context: CliContext = {
    env: options.env,
    stdout: { write: (text) => void (stdout += text) },
    stderr: { write: (text) => void (stderr += text), isTTY: false, columns: 80 },
    readStdin: async () => options.stdin ?? "",
    stdoutStream: new WritableStream<Uint8Array>({ write: (chunk) => void (stdout += new TextDecoder().decode(chunk)) }),
    cwd: options.cwd,
    homeDir: options.cwd,
    signal: new AbortController().signal,
  };
  try {
    return { code: await runCli(argv, context), stdout, stderr };
  } catch (error) {
    stderr += error instanceof OcibootError ? `ociboot: ${error.message}\n` : String(error);
    return { code: exitCodeFor(error), stdout, stderr };
  }
}

let work: string;
let layout: WrittenLayout;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "ociboot-login-"));
  layout = await writeOciLayout(join(work, "layout"), {
    manifests: [
      makeBootImage({
        dialect: "onmetal",
        tag: "1.0",
        kernel: { bytes: "kernel bytes" },
        initrd: { bytes: "initrd bytes" },
        rootfs: { bytes: "rootfs bytes" },
        commandLine: "console=ttyS0",
      }),
    ],
  });
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

for (const auth of ["basic", "token"] as const) {
  describe(`ociboot login / logout (${auth} auth)`, () => {
    let registry: RunningRegistry;
    let home: string;
    let env: Record<string, string>;

    beforeAll(async () => {
      registry = await startRegistry({ auth });
      await publishWithSkopeo(layout.directory, "1.0", registry, "boot/image");
      home = await mkdtemp(join(work, `home-${auth}-`));
      env = { DOCKER_CONFIG: join(home, "docker") };
    });

    afterAll(async () => {
      await registry.stop();
    });

    it("refuses a wrong password and writes nothing", async () => {
      const result = await ociboot(["login", registry.host, "-u", registry.credentials!.username, "--password-stdin"], {
        cwd: home,
        env,
        stdin: "wrong\n",
      });
      expect(result.code).toBe(4);
      expect(result.stderr).toMatch(/^ociboot: Cannot (log in to|get a token for) 127\.0\.0\.1:\d+/);
      expect(existsSync(join(home, "docker", "config.json"))).toBe(false);
    });

    it("logs in, and then ociboot and skopeo pull with the written config.json", async () => {
      const { username, password } = registry.credentials!;
      const login = await ociboot(["login", registry.host, "-u", username, "--password-stdin"], { cwd: home, env, stdin: `${password}\n` });
      expect(login).toMatchObject({ code: 0, stdout: "Login Succeeded\n" });
      const configFile = join(home, "docker", "config.json");
      expect((await stat(configFile)).mode & 0o777).toBe(0o600);
      const config = JSON.parse(await readFile(configFile, "utf8")) as { auths: Record<string, { auth: string }> };
      expect(Buffer.from(config.auths[registry.host]!.auth, "base64").toString()).toBe(`${username}:${password}`);

      // Our own pull finds the credentials through $DOCKER_CONFIG.
      const repository = openRepository({ registry: registry.host, repository: "boot/image" }, { env, homeDir: home });
      expect((await repository.resolve("1.0")).digest).toBe(layout.manifests[0]!.descriptor.digest);

      const fetched = await ociboot(["fetch", `${registry.host}/boot/image:1.0`, "-o", join(home, "boot"), "--quiet"], { cwd: home, env });
      expect(fetched.stderr).toBe("");
      expect(fetched.code).toBe(0);

      // skopeo reads the same file.
      const inspected = await run("skopeo", ["inspect", "--raw", "--tls-verify=false", "--authfile", configFile, `docker://${registry.host}/boot/image:1.0`]);
      expect(inspected.code).toBe(0);
      expect(inspected.stdout).toBe(layout.manifests[0]!.bytes.toString());
    });

    it("logs out, after which the registry refuses us again", async () => {
      const logout = await ociboot(["logout", registry.host], { cwd: home, env });
      expect(logout).toMatchObject({ code: 0, stdout: `Removed login credentials for ${registry.host}\n` });
      const configFile = join(home, "docker", "config.json");
      const config = JSON.parse(await readFile(configFile, "utf8")) as { auths: Record<string, unknown> };
      expect(config.auths).toEqual({});
      const repository = openRepository({ registry: registry.host, repository: "boot/image" }, { env, homeDir: home });
      await expect(repository.resolve("1.0")).rejects.toMatchObject({ code: "UNAUTHORIZED" });
      const again = await ociboot(["logout", registry.host], { cwd: home, env });
      expect(again.code).toBe(3);
    });
  });
}

describe("ociboot login under Deno, as a user runs it", () => {
  it("logs in with the password on stdin, then fetches with the stored credentials", async () => {
    const registry = await startRegistry({ auth: "basic" });
    try {
      await publishWithSkopeo(layout.directory, "1.0", registry, "boot/image");
      const home = await mkdtemp(join(work, "home-deno-"));
      const env = { DOCKER_CONFIG: join(home, "docker"), HOME: home };
      const { username, password } = registry.credentials!;
      const login = await run("npx", ["deno", "run", "-A", "src/main.ts", "login", registry.host, "-u", username, "--password-stdin"], {
        env,
        input: `${password}\n`,
      });
      expect(login.stderr).toMatch(/Credentials stored unencrypted in .*config\.json/);
      expect(login).toMatchObject({ code: 0, stdout: "Login Succeeded\n" });
      const fetched = await run("npx", ["deno", "run", "-A", "src/main.ts", "fetch", `${registry.host}/boot/image:1.0`, "-o", join(home, "boot"), "--quiet"], { env });
      expect(fetched.stderr).toBe("");
      expect(fetched.code).toBe(0);
    } finally {
      await registry.stop();
    }
  });
});

describe("ociboot login usage", () => {
  it("needs -u and --password-stdin", async () => {
    const result = await ociboot(["login", "127.0.0.1:1"], { cwd: work, env: {} });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/--password-stdin/);
  });
});
