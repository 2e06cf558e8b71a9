import { createHash } from "node:crypto";
import { OcibootError } from "../errors.ts";

export type DigestAlgorithm = "sha256" | "sha512";

/** A validated digest string such as `sha256:<64 lowercase hex>`. */
export type Digest = string & { readonly __brand: "Digest" };

const HEX_LENGTH: Readonly<Record<DigestAlgorithm, number>> = { sha256: 64, sha512: 128 };
const LOWER_HEX = /^[0-9a-f]+$/;
// OCI image spec v1.1 descriptor.md, "Digests": algorithm ::= algorithm-component (algorithm-separator
// algorithm-component)*, algorithm-component ::= [a-z0-9]+, algorithm-separator ::= [+._-],
// encoded ::= [a-zA-Z0-9=_-]+. A digest of this shape whose algorithm we do not implement is
// unsupported, not malformed: the spec allows algorithms beyond the registered ones.
const ALGORITHM = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*$/;
const ENCODED = /^[a-zA-Z0-9=_-]+$/;

export interface ParsedDigest {
  algorithm: DigestAlgorithm;
  hex: string;
  digest: Digest;
}

/**
 * Parses and validates a digest. Only sha256 (64 lowercase hex) and sha512 (128) are accepted,
 * because the digest later becomes a path component and a hash choice.
 *
 * @throws OcibootError INVALID_DIGEST when `input` does not follow the digest grammar (or a sha256 or
 *   sha512 digest has the wrong encoding); UNSUPPORTED for a well-formed digest of another algorithm.
 */
export function parseDigest(input: string): ParsedDigest {
  if (typeof input !== "string") {
    throw new OcibootError("INVALID_DIGEST", "Cannot parse digest: not a string");
  }
  const colon = input.indexOf(":");
  if (colon < 0) {
    throw new OcibootError("INVALID_DIGEST", `Cannot parse digest "${truncate(input)}": missing algorithm prefix`);
  }
  const algorithm = input.slice(0, colon);
  const hex = input.slice(colon + 1);
  if (algorithm !== "sha256" && algorithm !== "sha512") {
    if (ALGORITHM.test(algorithm) && ENCODED.test(hex)) {
      throw new OcibootError(
        "UNSUPPORTED",
        `Cannot use digest "${truncate(input)}": algorithm "${truncate(algorithm)}" is not supported (only sha256 and sha512)`,
        { details: { algorithm } },
      );
    }
    throw new OcibootError("INVALID_DIGEST", `Cannot parse digest "${truncate(input)}": not algorithm:encoded as the OCI digest grammar requires`);
  }
  if (hex.length !== HEX_LENGTH[algorithm] || !LOWER_HEX.test(hex)) {
    throw new OcibootError(
      "INVALID_DIGEST",
      `Cannot parse digest "${truncate(input)}": ${algorithm} needs ${HEX_LENGTH[algorithm]} lowercase hex characters`,
    );
  }
  return { algorithm, hex, digest: input as Digest };
}

/** Validates a digest and returns it branded. */
export function toDigest(input: string): Digest {
  return parseDigest(input).digest;
}

export function isDigest(input: unknown): input is Digest {
  if (typeof input !== "string") return false;
  try {
    parseDigest(input);
    return true;
  } catch {
    return false;
  }
}

/** Builds a sha256 digest from lowercase hex (as produced by node:crypto). */
export function sha256Digest(hex: string): Digest {
  return toDigest(`sha256:${hex}`);
}

/** The sha256 digest of bytes held in memory (manifests, configs, small files). */
export function sha256DigestOf(bytes: Uint8Array | string): Digest {
  return sha256Digest(createHash("sha256").update(bytes).digest("hex"));
}

function truncate(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
