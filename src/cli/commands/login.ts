import { Command } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { dockerConfigPath, normaliseRegistryHost, storeCredential } from "../../registry/auth/credentials.ts";
import { loadRegistryClient } from "../registry-loader.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { registryOptionsFrom } from "../registry-options.ts";

/**
 * `ociboot login HOST -u USER --password-stdin`: checks the credentials with the registry, then
 * stores them in docker's config.json format (through its credential helper when one is
 * configured), so docker, podman, skopeo and oras find them too.
 */
export function loginCommand(context: CliContext) {
  return new Command("login")
    .description("log in to a registry: check the credentials, then store them in docker's config.json ($DOCKER_CONFIG or ~/.docker)")
    .argument("<host>", "registry host[:port], e.g. ghcr.io or 127.0.0.1:5000")
    .option("--authfile <file>", "write this docker config.json instead of $DOCKER_CONFIG/config.json")
    .option("--json", JSON_HELP)
    .addHelpText(
      "after",
      examples(['echo "$TOKEN" | ociboot login ghcr.io -u USER --password-stdin', "ociboot login 127.0.0.1:5000 -u admin --password-stdin < password.txt"]),
    )
    .action(async (hostArgument, options, command) => {
      const global = globalOptions(command as never, context);
      const host = registryHost(hostArgument);
      if (global.username === undefined || !global.passwordStdin) {
        // Passwords never go on the command line, where other users see them in the process list.
        throw new OcibootError("USAGE", `Cannot log in to ${host}: give the user with -u and the password on standard input with --password-stdin`);
      }
      const password = (await context.readStdin()).replace(/\r?\n$/, "");
      if (password === "") throw new OcibootError("USAGE", `Cannot log in to ${host}: the password read from standard input is empty`);
      // The password is already read: the shared option builder must not read standard input again.
      const { username, ...withoutUser } = global;
      const registryOptions = await registryOptionsFrom({ ...withoutUser, passwordStdin: false }, context);
      registryOptions.username = username;
      registryOptions.password = password;
      const { checkLogin, closeRegistryConnections } = await loadRegistryClient();
      try {
        await checkLogin(host, registryOptions);
      } finally {
        await closeRegistryConnections(registryOptions);
      }
      const path = options.authfile !== undefined ? resolvePath(context, options.authfile) : dockerConfigPath(context.env, context.homeDir);
      const stored = await storeCredential(path, host, username, password, { env: context.env });
      if (!global.quiet) {
        context.stderr.write(
          stored.helper !== undefined
            ? `Credentials stored with docker-credential-${stored.helper}\n`
            : `Credentials stored unencrypted in ${path}\n`,
        );
      }
      printResult(context, options, "Login Succeeded\n", { registry: host, authfile: stored.helper === undefined ? path : null, helper: stored.helper ?? null }, global.quiet);
    });
}

/** `host[:port]` from what a user types (`https://host/`, `HOST:5000` …). */
export function registryHost(input: string): string {
  const host = normaliseRegistryHost(input);
  if (host === "" || /[\s@]/.test(host)) throw new OcibootError("USAGE", `Cannot use "${input}" as a registry host`);
  return host;
}
