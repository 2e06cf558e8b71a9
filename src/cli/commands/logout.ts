import { Command } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { dockerConfigPath, removeCredential } from "../../registry/auth/credentials.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { JSON_HELP, printResult } from "../output.ts";
import { resolvePath } from "../paths.ts";
import { registryHost } from "./login.ts";

/** `ociboot logout HOST`: removes the host's credentials from docker's config.json (and its helper). */
export function logoutCommand(context: CliContext) {
  return new Command("logout")
    .description("forget the credentials of a registry in docker's config.json ($DOCKER_CONFIG or ~/.docker)")
    .argument("<host>", "registry host[:port]")
    .option("--authfile <file>", "edit this docker config.json instead of $DOCKER_CONFIG/config.json")
    .option("--json", JSON_HELP)
    .addHelpText("after", examples(["ociboot logout ghcr.io"]))
    .action(async (hostArgument, options, command) => {
      const host = registryHost(hostArgument);
      const path = options.authfile !== undefined ? resolvePath(context, options.authfile) : dockerConfigPath(context.env, context.homeDir);
      const removed = await removeCredential(path, host, { env: context.env });
      if (!removed) throw new OcibootError("NOT_FOUND", `Cannot log out of ${host}: no credentials for it in ${path}`);
      printResult(context, options, `Removed login credentials for ${host}\n`, { registry: host, authfile: path }, globalOptions(command as never, context).quiet);
    });
}
