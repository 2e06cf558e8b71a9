import { homedir } from "node:os";
import process from "node:process";
import { Writable } from "node:stream";
import { setFlagsFromString } from "node:v8";
import { EXIT_CODES, exitCodeFor, isOcibootError, OcibootError } from "./errors.ts";
import { formatErrorJson, formatErrorText, wantsJsonOutput } from "./cli/error-output.ts";
import type { CliContext } from "./cli/context.ts";
import { runCli } from "./cli/program.ts";

/** The entry point: the only place that touches `process` besides `cli/`. */
async function main(): Promise<void> {
  keepWebAssemblyBaseline();
  const abort = new AbortController();
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) {
      // A second Ctrl-C ends at once; a progress display may have hidden the cursor.
      if (process.stderr.isTTY) process.stderr.write("\x1b[?25h\n");
      process.exit(130);
    }
    interrupted = true;
    abort.abort(new OcibootError("INTERRUPTED", "Interrupted"));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // A reader that went away (`… -o - | head`) ends the command the way Unix tools end: quietly, 141.
  process.stdout.on("error", (error) => {
    if (!isBrokenPipe(error)) return;
    process.exitCode = EXIT_CODES.BROKEN_PIPE;
    abort.abort(brokenPipeError(error));
  });
  // Nothing more can be said once standard error itself is gone.
  process.stderr.on("error", () => undefined);

  let stdoutStream: WritableStream<Uint8Array> | undefined;
  const context: CliContext = {
    env: process.env,
    stdout: { write: (text) => void process.stdout.write(text), isTTY: process.stdout.isTTY === true },
    stderr: {
      write: (text) => void process.stderr.write(text),
      isTTY: process.stderr.isTTY === true,
      columns: process.stderr.columns ?? 80,
    },
    readStdin: readAllStdin,
    // Made on first use: the Web Streams adapter costs ~4 ms at start and only `--output -` needs it.
    get stdoutStream() {
      stdoutStream ??= brokenPipeAware(Writable.toWeb(process.stdout) as WritableStream<Uint8Array>);
      return stdoutStream;
    },
    cwd: process.cwd(),
    homeDir: process.env["HOME"] ?? homedir(),
    signal: abort.signal,
  };

  const argv = process.argv.slice(2);
  let failure: unknown;
  try {
    const code = await runCli(argv, context);
    // The report may have met a closed pipe after the work itself succeeded: the output was lost.
    process.exitCode = isOcibootError(abort.signal.reason, "BROKEN_PIPE") ? EXIT_CODES.BROKEN_PIPE : code;
    return;
  } catch (error) {
    // Once Ctrl-C or a closed pipe aborted the work, whatever broke next (an xz child that got the
    // same SIGINT, a stream torn down mid-write) is a consequence, not the story.
    failure = abort.signal.aborted ? abort.signal.reason : error;
    if (failure instanceof OcibootError && failure !== error && failure.cause === undefined && argv.includes("--debug")) {
      failure = new OcibootError(failure.code, failure.message, { cause: error });
    }
  }
  const code = exitCodeFor(failure);
  if (!isOcibootError(failure, "BROKEN_PIPE")) {
    context.stderr.write(formatErrorText(failure, argv.includes("--debug")));
    // --json anywhere means JSON on failure too (docs/json-errors.md); where stdout carries a file
    // (`-o -`) the JSON would end up in it, so it goes to stderr then.
    if (wantsJsonOutput(argv)) (stdoutStream !== undefined ? context.stderr : context.stdout).write(formatErrorJson(failure));
  }
  // The error is reported: nothing left running (a timer, a socket, a child) may keep the process alive.
  process.exit(code);
}

function isBrokenPipe(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "EPIPE" || (error instanceof Error && error.name === "BrokenPipe");
}

function brokenPipeError(cause: unknown): OcibootError {
  return new OcibootError("BROKEN_PIPE", "Cannot write to standard output: the reader went away", { cause });
}

/** Standard output as a Web Stream whose write errors say BROKEN_PIPE when the reader is gone. */
function brokenPipeAware(stream: WritableStream<Uint8Array>): WritableStream<Uint8Array> {
  const writer = stream.getWriter();
  const mapped = (error: unknown) => (isBrokenPipe(error) ? brokenPipeError(error) : error);
  return new WritableStream<Uint8Array>({
    write: (chunk) => writer.write(chunk).catch((error: unknown) => Promise.reject(mapped(error))),
    close: () => writer.close().catch((error: unknown) => Promise.reject(mapped(error))),
    abort: (reason) => writer.abort(reason),
  });
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
