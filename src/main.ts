import { homedir } from "node:os";
import process from "node:process";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { exitCodeFor, isOcibootError, OcibootError } from "./errors.ts";
import { formatErrorJson, formatErrorText, wantsJsonOutput } from "./cli/error-output.ts";
import type { CliContext } from "./cli/context.ts";
import { runCli } from "./cli/program.ts";

/** The entry point: the only place that touches `process` besides `cli/`. */
async function main(): Promise<void> {
  keepWebAssemblyBaseline();
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    abort.abort(new OcibootError("INTERRUPTED", "Interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let stdoutStream: WritableStream<Uint8Array> | undefined;
  const context: CliContext = {
    env: process.env,
    stdout: { write: (text) => void process.stdout.write(text) },
    stderr: {
      write: (text) => void process.stderr.write(text),
      isTTY: process.stderr.isTTY === true,
      columns: process.stderr.columns ?? 80,
    },
    readStdin: readAllStdin,
    // Made on first use: the Web Streams adapter costs ~4 ms at start and only `--output -` needs it.
    get stdoutStream() {
      stdoutStream ??= Writable.toWeb(process.stdout) as WritableStream<Uint8Array>;
      return stdoutStream;
    },
    cwd: process.cwd(),
    homeDir: process.env["HOME"] ?? homedir(),
    signal: abort.signal,
  };

  const argv = process.argv.slice(2);
  try {
    process.exitCode = await runCli(argv, context);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
    context.stderr.write(formatErrorText(error, argv.includes("--debug")));
    if (wantsJsonOutput(argv)) {
      // Where stdout carries a file (`-o -`) the JSON would end up in it: it goes to stderr then.
      // A reader that went away cannot take it at all.
      if (stdoutStream !== undefined) context.stderr.write(formatErrorJson(error));
      else if (!isOcibootError(error, "BROKEN_PIPE")) context.stdout.write(formatErrorJson(error));
    }
  }
}

async function readAllStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks).toString("utf8");
}

// A CommonJS bundle (the single executable) cannot hold top-level await.
void main();

/**
 * undici parses HTTP with a WebAssembly module; V8's optimising compiler for it adds ~35 MB of
 * memory and ~80 ms at start and buys nothing measurable here (large blob bodies bypass the
 * parser, see registry/bulk-get.ts). Must run before the first request compiles the module.
 */
function keepWebAssemblyBaseline(): void {
  try {
    setFlagsFromString("--liftoff-only");
  } catch {
    // Runtimes without V8 flags (Deno's node:v8 may refuse): only memory is at stake.
  }
}
