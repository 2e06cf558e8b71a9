import type { CliContext } from "../../src/cli/context.ts";
import { runCli } from "../../src/cli/program.ts";
import { exitCodeFor, OcibootError } from "../../src/errors.ts";

/** What a CLI run printed and how it ended. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  error?: unknown;
}

/**
 * Runs the CLI in-process as the entry point would, with captured output, a given working
 * directory and environment; a thrown error becomes its exit code and message, as in main.ts.
 */
export async function runInProcess(argv: readonly string[], options: { cwd: string; env?: Record<string, string>; stdin?: string }): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const context: CliContext = {
    env: options.env ?? {},
    stdout: { write: (text) => void (stdout += text) },
    stderr: { write: (text) => void (stderr += text), isTTY: false, columns: 80 },
    readStdin: async () => options.stdin ?? "",
    stdoutStream: new WritableStream<Uint8Array>({
      write(chunk) {
        stdout += new TextDecoder().decode(chunk);
      },
    }),
    cwd: options.cwd,
    homeDir: options.cwd,
    signal: new AbortController().signal,
  };
  try {
    const code = await runCli(argv, context);
    return { code, stdout, stderr };
  } catch (error) {
    stderr += error instanceof OcibootError ? `ociboot: ${error.message}\n` : String(error);
    return { code: exitCodeFor(error), stdout, stderr, error };
  }
}
