import { createPrivateKey, createPublicKey, type KeyObject, scryptSync } from "node:crypto";
import { secretbox } from "@noble/ciphers/salsa";
import { OcibootError } from "../errors.ts";
import { decodeBase64, trustedKeyOf, type TrustedKey } from "../oci/signature.ts";

/** A private key to sign with, and its public half (the fingerprint users will trust). */
export interface SigningKey {
  key: KeyObject;
  publicKey: TrustedKey;
}

const COSIGN_ENCRYPTED_LABELS = ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"];
/** scrypt N cosign writes is 2^15; anything far above would only burn memory and time. */
const MAX_SCRYPT_N = 1 << 20;

/**
 * Loads a private key from PEM: PKCS#8 (`PRIVATE KEY`, or `ENCRYPTED PRIVATE KEY` with a
 * password), the older `RSA/EC PRIVATE KEY`, or cosign's own `cosign.key` (`ENCRYPTED SIGSTORE
 * PRIVATE KEY`: scrypt-derived key, NaCl secretbox around PKCS#8 DER; docs/trust.md). The password
 * is asked for only when the key is encrypted.
 *
 * @throws OcibootError USAGE naming the file for anything that is not a usable key or a wrong password.
 */
export async function loadSigningKey(pem: string, source: string, password: () => Promise<string>): Promise<SigningKey> {
  let key: KeyObject;
  const cosignLabel = COSIGN_ENCRYPTED_LABELS.find((label) => pem.includes(`-----BEGIN ${label}-----`));
  try {
    if (cosignLabel !== undefined) key = createPrivateKey({ key: Buffer.from(decryptCosignKey(pem, cosignLabel, await password())), format: "der", type: "pkcs8" });
    else if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----")) key = createPrivateKey({ key: pem, passphrase: await password() });
    else key = createPrivateKey(pem);
  } catch (error) {
    if (error instanceof OcibootError) throw error;
    throw new OcibootError("USAGE", `Cannot load signing key ${source}: ${(error as Error).message}`, { cause: error });
  }
  return { key, publicKey: trustedKeyOf(createPublicKey(key), source) };
}

function decryptCosignKey(pem: string, label: string, password: string): Uint8Array {
  const body = pem.split(`-----BEGIN ${label}-----`)[1]?.split(`-----END ${label}-----`)[0] ?? "";
  const envelope = JSON.parse(Buffer.from(body.replace(/\s+/g, ""), "base64").toString("utf8")) as {
    kdf?: { name?: string; params?: { N?: number; r?: number; p?: number }; salt?: string };
    cipher?: { name?: string; nonce?: string };
    ciphertext?: string;
  };
  const { kdf, cipher } = envelope;
  const salt = decodeBase64(kdf?.salt ?? "");
  const nonce = decodeBase64(cipher?.nonce ?? "");
  const ciphertext = Buffer.from(envelope.ciphertext ?? "", "base64");
  const { N = 0, r = 0, p = 0 } = kdf?.params ?? {};
  if (kdf?.name !== "scrypt" || cipher?.name !== "nacl/secretbox" || !salt || !nonce || nonce.byteLength !== 24 || N < 2 || N > MAX_SCRYPT_N || r < 1 || r > 32 || p < 1 || p > 16) {
    throw new Error("not a cosign encrypted key (scrypt + nacl/secretbox) this version can read");
  }
  const secret = scryptSync(password, salt, 32, { N, r, p, maxmem: 256 * N * r + 1024 * 1024 });
  try {
    return secretbox(secret, nonce).open(ciphertext);
  } catch {
    throw new OcibootError("USAGE", "Cannot decrypt the cosign key: wrong password (COSIGN_PASSWORD or --password-stdin)");
  }
}
