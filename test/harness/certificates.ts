import { copyFile, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { runOk } from "./commands.ts";

/**
 * X.509 material for the test peers, made with the openssl CLI because node:crypto cannot issue
 * certificates. P-256 keys, because RSA key generation costs tens to hundreds of milliseconds on this
 * machine and every test file starts its own peers.
 */

export interface CertificateAuthority {
  /** PEM certificate of the CA: what a client passes as `--ca-file` / `curl --cacert`. */
  caFile: string;
  caKeyFile: string;
  /** A directory holding only `ca.crt`, the layout skopeo and containers/image expect for `--cert-dir`. */
  certDirectory: string;
}

export interface ServerCertificate {
  certificateFile: string;
  keyFile: string;
}

export interface SelfSignedCertificate {
  certificateFile: string;
  keyFile: string;
}

const EC_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"] as const;
// Two days, so a run crossing midnight in any time zone never meets an expired certificate.
const VALIDITY_DAYS = "2";

/** Creates a self-signed CA in `directory`. */
export async function createCertificateAuthority(directory: string): Promise<CertificateAuthority> {
  await mkdir(directory, { recursive: true });
  const caFile = join(directory, "ca.pem");
  const caKeyFile = join(directory, "ca.key");
  await runOk("openssl", [
    "req", "-x509", ...EC_KEY_ARGS,
    "-keyout", caKeyFile, "-out", caFile, "-days", VALIDITY_DAYS,
    "-subj", "/CN=ociboot test CA",
    "-addext", "basicConstraints=critical,CA:TRUE",
    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
  ]);
  const certDirectory = join(directory, "cert-dir");
  await mkdir(certDirectory);
  await copyFile(caFile, join(certDirectory, "ca.crt"));
  return { caFile, caKeyFile, certDirectory };
}

/**
 * Issues a server certificate for 127.0.0.1 and localhost signed by `authority`, so that clients
 * must be given the CA (the realistic `--ca-file` case) rather than the server certificate itself.
 */
export async function issueServerCertificate(authority: CertificateAuthority, directory: string): Promise<ServerCertificate> {
  await mkdir(directory, { recursive: true });
  const keyFile = join(directory, "server.key");
  const requestFile = join(directory, "server.csr");
  const certificateFile = join(directory, "server.crt");
  const extensionsFile = join(directory, "server.ext");
  await runOk("openssl", ["req", "-new", ...EC_KEY_ARGS, "-keyout", keyFile, "-out", requestFile, "-subj", "/CN=127.0.0.1"]);
  // Go (the registry) ignores the common name and checks only subjectAltName.
  await writeFile(
    extensionsFile,
    [
      "basicConstraints=critical,CA:FALSE",
      "keyUsage=critical,digitalSignature",
      "extendedKeyUsage=serverAuth",
      "subjectAltName=IP:127.0.0.1,DNS:localhost",
      "",
    ].join("\n"),
  );
  await runOk("openssl", [
    "x509", "-req", "-in", requestFile,
    "-CA", authority.caFile, "-CAkey", authority.caKeyFile, "-CAcreateserial",
    "-out", certificateFile, "-days", VALIDITY_DAYS, "-extfile", extensionsFile,
  ]);
  return { certificateFile, keyFile };
}

/** Creates a self-signed P-256 certificate, e.g. the token signer the registry lists in `rootcertbundle`. */
export async function createSelfSignedCertificate(directory: string, commonName: string): Promise<SelfSignedCertificate> {
  await mkdir(directory, { recursive: true });
  const keyFile = join(directory, "signer.key");
  const certificateFile = join(directory, "signer.pem");
  await runOk("openssl", [
    "req", "-x509", ...EC_KEY_ARGS,
    "-keyout", keyFile, "-out", certificateFile, "-days", VALIDITY_DAYS,
    "-subj", `/CN=${commonName}`,
  ]);
  return { certificateFile, keyFile };
}
