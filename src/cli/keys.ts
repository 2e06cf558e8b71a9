import { type Command, Option, type OptionValues } from "@commander-js/extra-typings";
import { readBoundedFile } from "../content/fs-util.ts";
import { OcibootError } from "../errors.ts";
import { loadTrustedKey, SignatureLimits, type TrustedKey } from "../oci/signature.ts";
import type { TrustAnchors, TrustOptions, VerifiedSigner } from "../ops/signature.ts";
import type { SigningKey } from "../ops/signing-key.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { parseLocation } from "./sources.ts";
import { resolvePath } from "./paths.ts";

/** `--key FILE`, repeatable: a signature by any one of these keys is required (docs/trust.md). */
export const keyOption = () =>
  new Option("--key <file>", "require a cosign signature by this key (PEM public key or X.509 certificate; repeatable, any one is enough)")
    .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);

/**
 * `--key` and the keyless options (docs/keyless.md): a Sigstore bundle whose Fulcio certificate
 * the trusted root vouches for, issued to this identity by this OIDC issuer. A signature that
 * satisfies either `--key` or the keyless options is enough.
 */
export function withTrustOptions<Args extends unknown[], Opts extends OptionValues, Globals extends OptionValues>(command: Command<Args, Opts, Globals>) {
  return command
    .addOption(keyOption())
    .addOption(new Option("--certificate-identity <san>", "keyless: require a Sigstore bundle whose certificate was issued to exactly this identity (email or URI SAN)"))
    .addOption(new Option("--certificate-identity-regexp <re>", "keyless: as --certificate-identity, the whole SAN matching this regular expression"))
    .addOption(new Option("--certificate-oidc-issuer <url>", "keyless: the OIDC issuer the certificate must name (e.g. https://token.actions.githubusercontent.com)"))
    .addOption(new Option("--trusted-root <file>", "keyless: Sigstore trusted_root.json (Fulcio CAs, Rekor, CT logs, TSAs) to verify against, offline"));
}

interface TrustFlags {
  key?: string[];
  certificateIdentity?: string;
  certificateIdentityRegexp?: string;
  certificateOidcIssuer?: string;
  trustedRoot?: string;
}

/**
 * What the trust options ask for; undefined when none was given (no signature required).
 *
 * @throws OcibootError USAGE when the keyless options are incomplete or a file does not load.
 */
export async function loadTrust(flags: TrustFlags, context: CliContext): Promise<TrustAnchors | undefined> {
  const keys = (await loadKeys(flags.key, context)) ?? [];
  const keylessGiven = [flags.certificateIdentity, flags.certificateIdentityRegexp, flags.certificateOidcIssuer, flags.trustedRoot].some((value) => value !== undefined);
  if (!keylessGiven) return keys.length > 0 ? { keys } : undefined;
  const { certificateIdentity: identity, certificateIdentityRegexp: regexp, certificateOidcIssuer: issuer, trustedRoot } = flags;
  if ((identity === undefined) === (regexp === undefined) || issuer === undefined || trustedRoot === undefined) {
    throw new OcibootError(
      "USAGE",
      "Cannot verify keyless signatures: give --trusted-root FILE, --certificate-oidc-issuer URL and one of --certificate-identity ID or --certificate-identity-regexp RE",
    );
  }
  const bytes = await readBoundedFile(resolvePath(context, trustedRoot), 1024 * 1024).catch((error: unknown) => {
    throw new OcibootError("USAGE", `Cannot read trusted root ${trustedRoot}: ${(error as Error).message}`, { cause: error });
  });
  if (bytes === undefined) throw new OcibootError("USAGE", `Cannot read trusted root ${trustedRoot}: no such file`);
  // The Sigstore libraries load only when keyless verification is asked for.
  const { identityPattern, loadTrustedRoot } = await import("../oci/keyless.ts");
  const policy = identity !== undefined ? { identity, issuer } : { identityPattern: identityPattern(regexp ?? ""), issuer };
  return { keys, keyless: loadTrustedRoot(bytes, trustedRoot, policy) };
}

/** Reads and parses the key files named by `--key`; none given is undefined (no signature required). */
export async function loadKeys(files: readonly string[] | undefined, context: CliContext): Promise<TrustedKey[] | undefined> {
  if (files === undefined || files.length === 0) return undefined;
  const keys: TrustedKey[] = [];
  for (const file of files) {
    const bytes = await readBoundedFile(resolvePath(context, file), SignatureLimits.keyFileBytes).catch((error: unknown) => {
      throw new OcibootError("USAGE", `Cannot read key ${file}: ${(error as Error).message}`, { cause: error });
    });
    if (bytes === undefined) throw new OcibootError("USAGE", `Cannot read key ${file}: no such file`);
    keys.push(loadTrustedKey(bytes, file));
  }
  return keys;
}

/**
 * The trust an operation needs for a source written on the command line: the keys, and for a
 * layout or archive the image's name, under which a copied signature may be tagged there.
 */
export function trustFor(trust: TrustAnchors, sourceText: string): TrustOptions {
  const location = parseLocation(sourceText);
  const name = location.kind !== "registry" && location.reference !== undefined ? repositoryOf(location.reference) : undefined;
  return name === undefined ? { ...trust } : { ...trust, name };
}

/** `ghcr.io/a/b:1.0` → `ghcr.io/a/b`; a bare tag or digest names no repository. */
export function repositoryOf(reference: string): string | undefined {
  const at = reference.indexOf("@");
  const withoutDigest = at < 0 ? reference : reference.slice(0, at);
  const slash = withoutDigest.lastIndexOf("/");
  const colon = withoutDigest.lastIndexOf(":");
  const name = colon > slash ? withoutDigest.slice(0, colon) : withoutDigest;
  return name.includes("/") ? name : undefined;
}

/**
 * Reads a private key for signing (`sign --key`, `pack --sign-key`). An encrypted key's password
 * comes from `--password-stdin` when no `--username` claims standard input for the registry,
 * else from `COSIGN_PASSWORD`, as cosign reads it. The key code (and its cipher library) loads only here.
 */
export async function loadSigningKeyFile(file: string, context: CliContext, global: GlobalOptions): Promise<SigningKey> {
  const passwordFromStdin = keyPasswordFromStdin(global);
  const password = async (): Promise<string> => {
    if (passwordFromStdin) return (await context.readStdin()).replace(/\r?\n$/, "");
    const fromEnvironment = context.env["COSIGN_PASSWORD"];
    if (fromEnvironment === undefined) throw new OcibootError("USAGE", `Cannot decrypt ${file}: set COSIGN_PASSWORD or give --password-stdin`);
    return fromEnvironment;
  };
  const pem = await readBoundedFile(resolvePath(context, file), SignatureLimits.keyFileBytes);
  if (pem === undefined) throw new OcibootError("USAGE", `Cannot read signing key ${file}: no such file`);
  const { loadSigningKey } = await import("../ops/signing-key.ts");
  return loadSigningKey(new TextDecoder().decode(pem), file, password);
}

/** Without `--username`, `--password-stdin` can only mean the signing key's password. */
export function keyPasswordFromStdin(global: GlobalOptions): boolean {
  return global.passwordStdin && global.username === undefined;
}

/** A verified signer for human output: the key's fingerprint and file, or a keyless signature's identity and issuer. */
export function signerLabel(signer: VerifiedSigner): string {
  if (signer.identity !== undefined) return `${signer.identity} (issuer ${signer.issuer ?? "?"}, certificate key ${signer.fingerprint})`;
  return `${signer.fingerprint} (${signer.key})`;
}
