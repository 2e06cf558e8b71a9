import { describe, expect, it } from "vitest";
import { run } from "../harness/commands.ts";
import { ociboot, OCIBOOT_BINARY } from "./ociboot-binary.ts";

const BOLD = "\u001b[1m";

/** Runs the binary on a real pseudo-terminal (util-linux `script`), so stdout is a TTY. */
function onTerminal(args: string, env: Record<string, string | undefined> = {}) {
  return run("timeout", ["-k", "5", "30", "script", "-qec", `${OCIBOOT_BINARY} ${args}`, "/dev/null"], {
    env: { HOME: "/nonexistent", NO_COLOR: undefined, ...env },
  });
}

describe("colour", () => {
  it("help headings are bold on a terminal, plain with NO_COLOR and when piped", async () => {
    const coloured = await onTerminal("--help");
    expect(coloured.code).toBe(0);
    expect(coloured.stdout).toContain(`${BOLD}Boot files:`);
    expect((await onTerminal("fetch --help")).stdout).toContain(`${BOLD}Registry options:`);

    const plain = await onTerminal("--help", { NO_COLOR: "1" });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain("Boot files:");
    expect(plain.stdout).not.toContain("\u001b[");

    const piped = await ociboot(["--help"]);
    expect(piped.stdout).toContain("Boot files:");
    expect(piped.stdout).not.toContain("\u001b[");
  });
});
