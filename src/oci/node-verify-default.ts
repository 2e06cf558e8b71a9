import nodeCrypto, { type KeyObject } from "node:crypto";

let filled = false;

/**
 * Makes `crypto.verify` with no algorithm behave under Deno as it does under Node. Node (OpenSSL 3)
 * verifies with SHA-256 when it is given no digest for an EC or RSA key; Deno throws "no default
 * digest". `@sigstore/core` calls it that way for Rekor's signed entry timestamps and checkpoints,
 * the CT logs' SCTs and the DSSE signature, and turns the throw into "not verified", so under Deno
 * every keyless bundle would be refused (docs/keyless.md). Only a missing algorithm with an EC or
 * RSA key object is filled in; every other call goes through unchanged. Nothing happens under Node.
 */
export function fillVerifyDigestDefault(): void {
  if (filled || !("Deno" in globalThis)) return;
  filled = true;
  const original = nodeCrypto.verify;
  const patched = function (this: unknown, algorithm: string | null | undefined, data: unknown, key: unknown, ...rest: unknown[]) {
    const digest = algorithm ?? (isPrehashKey(key) ? "sha256" : algorithm);
    return (original as (...args: unknown[]) => unknown).call(this, digest, data, key, ...rest);
  };
  nodeCrypto.verify = patched as typeof original;
}

function isPrehashKey(key: unknown): boolean {
  const type = typeof key === "object" && key !== null && "asymmetricKeyType" in key ? (key as KeyObject).asymmetricKeyType : undefined;
  return type === "ec" || type === "rsa";
}
