import { Command, Option } from "@commander-js/extra-typings";
import { OciLayoutStore } from "../../content/layout.ts";
import { OcibootError } from "../../errors.ts";
import type { SignImageOptions, SignReport } from "../../ops/sign.ts";
import type { SigningKey } from "../../ops/signing-key.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { parseLocation } from "../sources.ts";
import { withRepository } from "./registry-access.ts";
import { keyPasswordFromStdin, loadSigningKeyFile, repositoryOf } from "../keys.ts";

/** `ociboot sign REF --key KEY`: a cosign-compatible signature (`sha256-<hex>.sig`). */
export function signCommand(context: CliContext) {
  return new Command("sign")
    .description("sign an image as cosign does (the legacy sha256-<hex>.sig tag, appended to any signatures already there)")
    .argument("<ref>", "registry reference or oci:DIR:REF")
    .requiredOption("--key <file>", "private key: PKCS#8 PEM, or cosign's encrypted cosign.key (password from COSIGN_PASSWORD or --password-stdin)")
    .addOption(
      new Option("-a, --annotation <key=value>", "a claim in the payload's optional section (repeatable), as cosign sign -a")
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .option("--bundle", "write a Sigstore bundle v0.3 as an OCI 1.1 referrer (cosign v3's default) instead of the .sig tag")
    .option("--json", "print a JSON report on stdout")
    .addHelpText(
      "after",
      examples([
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out release.pem && openssl pkey -in release.pem -pubout -out release.pub",
        "ociboot sign 127.0.0.1:5000/os/metal:today --key release.pem            # appends to sha256-<hex>.sig",
        "ociboot verify 127.0.0.1:5000/os/metal:today --key release.pub          # the signature, then the whole image",
      ]) + "\ncosign's encrypted cosign.key works too, with its password in COSIGN_PASSWORD or on --password-stdin.",
    )
    .action(async (ref, options, command) => {
      const global = globalOptions(command as never, context);
      const key = await loadSigningKeyFile(options.key, context, global);
      const annotations = parseAnnotations(options.annotation ?? []);
      const report = await signAt(ref, key, annotations, options.bundle === true, { ...global, passwordStdin: keyPasswordFromStdin(global) ? false : global.passwordStdin }, context);
      context.stdout.write(
        options.json === true
          ? `${JSON.stringify({ reference: ref, ...report }, null, 2)}\n`
          : `${report.added ? "Signed" : "Already signed"} ${ref} ${report.digest} by ${report.fingerprint}: ${report.tag} (${report.layers} signature${report.layers === 1 ? "" : "s"})\n`,
      );
    });
}

async function signAt(
  ref: string,
  key: SigningKey,
  annotations: Record<string, string> | undefined,
  bundle: boolean,
  global: ReturnType<typeof globalOptions>, context: CliContext): Promise<SignReport> {
  const operations = await import("../../ops/sign.ts");
  if (bundle && annotations) throw new OcibootError("USAGE", "Cannot use -a with --bundle: a bundle's statement carries no annotations");
  const signImage = bundle ? operations.signImageBundle : operations.signImage;
  const location = parseLocation(ref);
  const extra: Pick<SignImageOptions, "annotations" | "signal"> = { signal: context.signal, ...(annotations ? { annotations } : {}) };
  switch (location.kind) {
    case "archive":
      throw new OcibootError("USAGE", `Cannot sign ${ref}: an archive is written once; sign the image in a registry or an oci: layout before packing it`);
    case "layout": {
      if (location.reference === undefined) throw new OcibootError("USAGE", `Cannot sign ${ref}: name the image, oci:DIR:REF`);
      const name = repositoryOf(location.reference);
      const store = new OciLayoutStore(resolvePath(context, location.path));
      return signImage(store, location.reference, key, { ...extra, dockerReference: name ?? location.reference, ...(name !== undefined ? { name } : {}) });
    }
    case "registry":
      return withRepository(location.reference, global, context, (repository, reference) =>
        signImage(repository, reference.digest ?? reference.tag ?? "latest", key, { ...extra, dockerReference: `${reference.registry}/${reference.repository}` }),
      );
  }
}

function parseAnnotations(entries: readonly string[]): Record<string, string> | undefined {
  if (entries.length === 0) return undefined;
  const result: Record<string, string> = {};
  for (const entry of entries) {
    const equals = entry.indexOf("=");
    if (equals <= 0) throw new OcibootError("USAGE", `Cannot use -a ${entry}: expected key=value`);
    result[entry.slice(0, equals)] = entry.slice(equals + 1);
  }
  return result;
}
