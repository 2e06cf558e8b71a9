/**
 * The single error type of ociboot. Every failure that reaches the user carries a literal `code`;
 * `exitCodeFor` maps codes to process exit codes (documented in README).
 */
export type ErrorCode =
  | "USAGE"
  | "INVALID_REFERENCE"
  | "INVALID_DIGEST"
  | "INVALID_MANIFEST"
  | "UNSUPPORTED"
  | "NOT_FOUND"
  | "AMBIGUOUS"
  | "UNAUTHORIZED"
  | "DENIED"
  | "INTEGRITY"
  | "UNSAFE_CONTENT"
  | "NETWORK"
  | "TIMEOUT"
  | "TLS"
  | "RATE_LIMITED"
  | "REGISTRY"
  | "LOCAL_IO"
  | "LOCKED"
  | "NO_BOOT_FILES"
  | "SIGNATURE"
  | "BROKEN_PIPE"
  | "INTERRUPTED"
  | "INTERNAL";

/** Exit codes by error code. 0 is success, 1 is reserved for unexpected crashes. */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  USAGE: 2,
  INVALID_REFERENCE: 2,
  INVALID_DIGEST: 2,
  INVALID_MANIFEST: 5,
  UNSUPPORTED: 6,
  NOT_FOUND: 3,
  AMBIGUOUS: 2,
  UNAUTHORIZED: 4,
  DENIED: 4,
  INTEGRITY: 5,
  UNSAFE_CONTENT: 5,
  NETWORK: 7,
  TIMEOUT: 7,
  TLS: 7,
  RATE_LIMITED: 8,
  REGISTRY: 9,
  LOCAL_IO: 10,
  LOCKED: 10,
  NO_BOOT_FILES: 3,
  SIGNATURE: 11,
  // As a Unix tool killed by SIGPIPE reports in the shell (128 + 13): the reader went away.
  BROKEN_PIPE: 141,
  INTERRUPTED: 130,
  INTERNAL: 1,
};

export interface OcibootErrorOptions {
  cause?: unknown;
  /** Extra machine-readable facts (for --json error output). */
  details?: Record<string, unknown>;
}

export class OcibootError extends Error {
  override readonly name = "OcibootError";
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: OcibootErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options.details;
  }
}

/** Returns true when `value` is an OcibootError, optionally with the given code. */
export function isOcibootError(value: unknown, code?: ErrorCode): value is OcibootError {
  return value instanceof OcibootError && (code === undefined || value.code === code);
}

/** Exit code for anything thrown: typed errors by table, anything else is an internal error. */
export function exitCodeFor(error: unknown): number {
  return error instanceof OcibootError ? EXIT_CODES[error.code] : EXIT_CODES.INTERNAL;
}
