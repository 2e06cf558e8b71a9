import { Command, CommanderError } from "@commander-js/extra-typings";
import { OcibootError } from "../errors.ts";
import type { CliContext } from "./context.ts";
import { COMMANDS } from "./commands/index.ts";

/** Builds the command tree; each command lives in its own file under `commands/`. */
export function buildProgram(context: CliContext): Command {
  const output = {
    writeOut: (text: string) => context.stdout.write(text),
    writeErr: (text: string) => context.stderr.write(text),
    // Usage errors are thrown and printed once, with the others, by the entry point.
    outputError: () => undefined,
  };
  const program = new Command()
    .name("ociboot")
    .description("Fetch, verify, store and move OS boot images published as OCI artifacts.")
    .option("-V, --version", "print version, commit, runtime, platform and dependencies (as `ociboot version`)")
    .option("--store-path <dir>", "local store directory (default: $OCIBOOT_STORE or ~/.onmetal)")
    .option("--ca-file <file>", "trust this CA certificate (PEM) for registry TLS")
    .option("--insecure", "skip TLS certificate verification (dangerous)")
    .option("--plain-http", "talk plain HTTP to non-loopback registries")
    .option("--registry-config <file>", "registry mirrors configuration (registries.conf style; default $OCIBOOT_REGISTRIES_CONF)")
    .option("--registry-mirror <origin=mirror>", "pull ORIGIN through MIRROR[,MIRROR…] first (repeatable)", (value: string, previous: string[] = []) => [...previous, value])
    .option("--authfile <file>", "registry credentials file (docker config.json or containers auth.json), looked at first")
    .option("-u, --username <user>", "registry user name (password from --password-stdin)")
    .option("--password-stdin", "read the registry password from standard input")
    .option("-q, --quiet", "print nothing but errors and requested output")
    .option("--debug", "log HTTP requests (secrets redacted) to stderr")
    .configureOutput(output)
    .exitOverride();
  for (const makeCommand of COMMANDS) {
    const command = makeCommand(context);
    command.exitOverride().configureOutput(output);
    // Global options are accepted after the command name too, as onmetal-image does.
    copyGlobalOptions(program, command);
    program.addCommand(command);
  }
  return program;
}

function copyGlobalOptions(program: Command, command: Command): void {
  for (const option of program.options) {
    if (option.long === "--version") continue;
    if (command.options.some((existing) => existing.long === option.long)) continue;
    command.addOption(Object.assign(Object.create(Object.getPrototypeOf(option)), option));
  }
}

/** Runs the CLI; returns the process exit code. */
export async function runCli(argv: readonly string[], context: CliContext): Promise<number> {
  const program = buildProgram(context);
  const args = versionFlagAsCommand(program, argv);
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version" || error.code === "commander.help") {
        return 0;
      }
      throw new OcibootError("USAGE", `${error.message.replace(/^error: /, "")} (see ociboot --help)`, { cause: error });
    }
    throw error;
  }
}

/**
 * `--version` tells as much as `ociboot version` does, so before any command name it becomes that
 * command (global options such as `--debug` stay in front of it).
 */
function versionFlagAsCommand(program: Command, argv: readonly string[]): string[] {
  const args = [...argv];
  const flag = args.findIndex((arg) => arg === "--version" || arg === "-V");
  if (flag === -1) return args;
  const commandNames = new Set(program.commands.flatMap((command) => [command.name(), ...command.aliases()]));
  if (args.slice(0, flag).some((arg) => commandNames.has(arg))) return args;
  args.splice(flag, 1);
  args.push("version");
  return args;
}

