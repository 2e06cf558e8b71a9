import { type ChildProcessByStdio, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { OcibootError } from "../errors.ts";
import { chunkPuller } from "./node-web-streams.ts";

/** A running system `xz` (or `zstd`): its stdin (when piped) and its stdout as a stream. */
export interface XzProcess {
  /** Where the input goes; undefined when xz reads a file named in its arguments. */
  input: Writable | undefined;
  /**
   * xz's output. A non-zero exit errors the stream only after all output was read, so the error
   * is never lost; cancelling it kills xz.
   */
  output: ReadableStream<Uint8Array>;
  kill(): void;
}

/**
 * Starts the system `xz` with `args`, or returns undefined when there is no `xz` to run (the
 * caller decides what that means: a WebAssembly decoder, or a clear refusal). `failure` turns
 * xz's own complaint into the error the output stream ends with.
 */
export function startXz(args: readonly string[], options: FilterOptions): Promise<XzProcess | undefined> {
  return startFilterProgram("xz", args, options);
}

/** How {@link startFilterProgram} connects the program. */
export interface FilterOptions {
  pipeInput: boolean;
  failure: (detail: string) => OcibootError;
}

/**
 * Starts a compression program that filters stdin (or a named file) to stdout — `xz` or `zstd`,
 * which share that shape — or returns undefined when `program` is not installed.
 */
export async function startFilterProgram(program: "xz" | "zstd", args: readonly string[], options: FilterOptions): Promise<XzProcess | undefined> {
  // Its own process group: Ctrl-C on a terminal signals the whole foreground group, and an xz that
  // died of it would fail the write in flight before ociboot could stop in order (docs/cli-behaviour.md).
  // ociboot ends xz itself (kill, or end of input); if ociboot dies, xz meets a closed pipe.
  const child: ChildProcessByStdio<Writable | null, Readable, Readable> = options.pipeInput
    ? spawn(program, args, { stdio: ["pipe", "pipe", "pipe"], detached: true })
    : spawn(program, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  const started = await new Promise<boolean>((resolve) => {
    child.once("spawn", () => resolve(true));
    child.once("error", () => resolve(false));
  });
  if (!started) return undefined;
  let errorText = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    if (errorText.length < 4096) errorText += text;
  });
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const next = chunkPuller(child.stdout);
  const output = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const value = await next();
        if (value !== undefined) {
          controller.enqueue(value);
          return;
        }
        const code = await exited;
        if (code === 0) controller.close();
        else controller.error(options.failure(errorText.trim() || `exit ${code}`));
      },
      cancel() {
        child.kill();
        child.stdout.destroy();
      },
    },
    { highWaterMark: 0 },
  );
  return { input: child.stdin ?? undefined, output, kill: () => child.kill() };
}
