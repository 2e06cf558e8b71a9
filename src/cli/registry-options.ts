import { OcibootError } from "../errors.ts";
import { mergeMirrorConfigs, parseMirrorFlag, readMirrorConfig, type MirrorConfig } from "../registry/mirrors.ts";
import type { RegistryOptions } from "../registry/repository.ts";
import type { CliContext } from "./context.ts";
import type { GlobalOptions } from "./global-options.ts";
import { resolvePath } from "./paths.ts";

/** Registry client settings from the global options and the environment. */
export async function registryOptionsFrom(global: GlobalOptions, context: CliContext): Promise<RegistryOptions> {
  const options: RegistryOptions = {
    env: context.env,
    homeDir: context.homeDir,
    insecure: global.insecure,
    plainHttp: global.plainHttp,
    warn: (line) => context.stderr.write(`ociboot: warning: ${line}\n`),
  };
  if (global.debug) options.log = (line) => context.stderr.write(`debug: ${line}\n`);
  if (global.caFile !== undefined) options.caFile = resolvePath(context, global.caFile);
  if (global.authFile !== undefined) options.authFile = resolvePath(context, global.authFile);
  const mirrors = mirrorConfig(global, context);
  if (mirrors) options.mirrors = mirrors;
  if (global.passwordStdin) {
    if (global.username === undefined) throw new OcibootError("USAGE", "Cannot use --password-stdin without --username");
    options.username = global.username;
    options.password = await passwordFromStdin(context);
  } else if (global.username !== undefined) {
    throw new OcibootError("USAGE", "Cannot use --username without --password-stdin (passwords never go on the command line)");
  }
  return options;
}

function mirrorConfig(global: GlobalOptions, context: CliContext): MirrorConfig | undefined {
  const configs: MirrorConfig[] = [];
  if (global.registryMirrors.length > 0) configs.push({ rules: global.registryMirrors.map(parseMirrorFlag) });
  const file = global.registryConfig ?? context.env["OCIBOOT_REGISTRIES_CONF"];
  if (file !== undefined) configs.push(readMirrorConfig(resolvePath(context, file)));
  return configs.length > 0 ? mergeMirrorConfigs(...configs) : undefined;
}

const passwords = new WeakMap<CliContext, Promise<string>>();

/** Standard input can be read once: a command that opens two registries gets the same password for both. */
function passwordFromStdin(context: CliContext): Promise<string> {
  let password = passwords.get(context);
  if (password === undefined) {
    password = context.readStdin().then((text) => text.replace(/\r?\n$/, ""));
    passwords.set(context, password);
  }
  return password;
}
