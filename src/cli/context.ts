/**
 * What a command may touch of the outside world. Only the entry point builds it from `process`,
 * so commands stay testable and runtime-neutral.
 */
export interface CliContext {
  env: Readonly<Record<string, string | undefined>>;
  /** `isTTY`: standard output is a terminal (binary output is refused there; help may use colour unless NO_COLOR). */
  stdout: TextSink & { isTTY?: boolean };
  stderr: TextSink & { isTTY: boolean; columns: number };
  /** Reads all of standard input (for --password-stdin). */
  readStdin(): Promise<string>;
  /** Raw standard output, for `--output -`. */
  stdoutStream: WritableStream<Uint8Array>;
  cwd: string;
  homeDir: string;
  signal: AbortSignal;
}

export interface TextSink {
  write(text: string): void;
}
