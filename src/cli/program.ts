import { Command, CommanderError, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../errors.ts";
import { Group, GROUP_ORDER, type OptionSet, placementOf } from "./command-groups.ts";
import type { CliContext } from "./context.ts";
import { COMMANDS } from "./commands/index.ts";
import { examples } from "./examples.ts";

interface SharedOption {
  set: OptionSet | "common";
  make: () => Option;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

/**
 * Options shared by several commands. All of them are accepted before the command name (as
 * onmetal-image takes `--store-path`); after it, only by the commands whose option sets
 * (`command-groups.ts`) include them, so `fetch --help` shows no store option and `list --help`
 * no registry option.
 */
const SHARED_OPTIONS: readonly SharedOption[] = [
  { set: "store", make: () => new Option("--store-path <dir>", "local store directory (default: $OCIBOOT_STORE or ~/.onmetal)") },
  { set: "registry", make: () => new Option("--ca-file <file>", "trust this CA certificate (PEM) for registry TLS") },
  { set: "registry", make: () => new Option("--insecure", "skip TLS certificate verification (dangerous)") },
  { set: "registry", make: () => new Option("--plain-http", "talk plain HTTP to non-loopback registries") },
  {
    set: "registry",
    make: () => new Option("--registry-config <file>", "registry mirrors configuration (registries.conf style; default $OCIBOOT_REGISTRIES_CONF)"),
  },
  {
    set: "registry",
    make: () => new Option("--registry-mirror <origin=mirror>", "pull ORIGIN through MIRROR[,MIRROR…] first (repeatable)").argParser(collect),
  },
  { set: "registry", make: () => new Option("--authfile <file>", "registry credentials file (docker config.json or containers auth.json), looked at first") },
  { set: "registry", make: () => new Option("-u, --username <user>", "registry user name (password from --password-stdin)") },
  { set: "registry", make: () => new Option("--password-stdin", "read the registry password from standard input") },
  { set: "common", make: () => new Option("-q, --quiet", "print nothing but errors and requested output") },
  { set: "common", make: () => new Option("--debug", "log HTTP requests (secrets redacted) to stderr") },
];

const OPTION_GROUP: Readonly<Record<SharedOption["set"], string>> = {
  store: "Store options:",
  registry: "Registry options:",
  common: "Options:",
};

/** The three lines most people come for, shown by `ociboot --help`. */
const TOP_EXAMPLES = [
  "ociboot fetch 127.0.0.1:5000/os/metal:today -o ./boot                # kernel, initrd, rootfs, cmdline, verified",
  "ociboot copy 127.0.0.1:5000/os/metal:today oci-archive:metal.oci.tar.gz --with-referrers   # for an air gap",
  "ociboot verify 127.0.0.1:5000/os/metal:today --dir ./boot            # exit 0 only if all match",
];

/** Builds the command tree; each command lives in its own file under `commands/`. */
export function buildProgram(context: CliContext): Command {
  const colour = context.stdout.isTTY === true && !noColor(context);
  const output = {
    writeOut: (text: string) => context.stdout.write(text),
    writeErr: (text: string) => context.stderr.write(text),
    // Usage errors are thrown and printed once, with the others, by the entry point.
    outputError: () => undefined,
    getOutHasColors: () => colour,
    getErrHasColors: () => false,
  };
  const help = { styleTitle: (title: string) => `\u001b[1m${title}\u001b[22m` };
  const program = new Command()
    .name("ociboot")
    .description("Fetch, verify, store and move OS boot images published as OCI artifacts.")
    .option("-V, --version", "print version, commit, runtime, platform and dependencies (as `ociboot version`)")
    .configureOutput(output)
    .configureHelp(help)
    .showSuggestionAfterError(true)
    // Shared options after the command name belong to the command, and only some take them.
    .enablePositionalOptions()
    .exitOverride();
  for (const shared of SHARED_OPTIONS) program.addOption(shared.make().helpGroup(OPTION_GROUP[shared.set]));
  program.helpOption("-h, --help", "print help");
  const helpCommand = program.createCommand("help").argument("[command]").description("print help for a command").helpOption(false);
  program.addHelpCommand(helpCommand.helpGroup(Group.shell) as unknown as Command);
  program.addHelpText("after", examples(TOP_EXAMPLES) + "\nRun ociboot COMMAND --help for a command's options and examples.\n");

  const commands = COMMANDS.map((makeCommand) => makeCommand(context));
  const rank = (command: Command) => GROUP_ORDER.indexOf(placementOf(command.name()).group);
  for (const command of [...commands].sort((a, b) => rank(a) - rank(b))) {
    const placement = placementOf(command.name());
    command.exitOverride(rememberCommand(command)).configureOutput(output).configureHelp(help).helpGroup(placement.group);
    command.helpOption("-h, --help", "print help");
    if (command.summary() === "") command.summary(summaryOf(command.description()));
    for (const shared of SHARED_OPTIONS) {
      if (shared.set !== "common" && !placement.options.includes(shared.set)) continue;
      const option = shared.make();
      if (command.options.some((existing) => existing.long === option.long)) continue;
      command.addOption(option.helpGroup(OPTION_GROUP[shared.set]));
    }
    program.addCommand(command);
  }
  return program;
}

/** `NO_COLOR` (https://no-color.org): any non-empty value turns colour off. */
export function noColor(context: CliContext): boolean {
  const value = context.env["NO_COLOR"];
  return value !== undefined && value !== "";
}

/**
 * The top-level list shows each command's first clause only; `COMMAND --help` shows the whole
 * description.
 */
function summaryOf(description: string): string {
  const cut = /: |; | \(|, (?:every|digests|as|then)\b/.exec(description);
  return cut === null ? description : description.slice(0, cut.index);
}

const failedCommands = new WeakMap<CommanderError, Command>();

/** Remembers which (sub)command raised a usage error, so the message can point to its help. */
function rememberCommand(command: Command) {
  return (error: CommanderError): never => {
    failedCommands.set(error, command);
    throw error;
  };
}

function commandPath(command: Command | undefined): string {
  const names: string[] = [];
  for (let current: Command | null | undefined = command; current; current = current.parent as Command | null) names.unshift(current.name());
  return names.length === 0 ? "ociboot" : names.join(" ");
}

/** Runs the CLI; returns the process exit code. */
export async function runCli(argv: readonly string[], context: CliContext): Promise<number> {
  const program = buildProgram(context);
  let running: Command | undefined;
  program.hook("preAction", (_program, actionCommand) => {
    running = actionCommand as Command;
  });
  const args = unknownHelpTopicAsCommand(program, versionFlagAsCommand(program, argv));
  try {
    await program.parseAsync(args, { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return 0;
      // Commander shows help this way when no command is given: that is a usage error.
      if (error.code === "commander.help") return error.exitCode === 0 ? 0 : 2;
      const message = error.message.replace(/^error: /, "").replace(/\n/g, " ");
      const hint = `(see ${commandPath(failedCommands.get(error) ?? program)} --help)`;
      throw new OcibootError("USAGE", `${message} ${hint}`, { cause: error });
    }
    if (error instanceof OcibootError && error.code === "USAGE" && running !== undefined) {
      throw new OcibootError("USAGE", `${error.message} (see ${commandPath(running)} --help)`, { cause: error, ...detailsOf(error) });
    }
    throw error;
  }
}

function detailsOf(error: OcibootError): { details?: Record<string, unknown> } {
  return error.details === undefined ? {} : { details: error.details };
}
/**
 * `help fech` should fail as `fech` does, with the same suggestion, instead of printing the whole
 * top-level help: the topic becomes the command, so commander names it and offers the near miss.
 */
function unknownHelpTopicAsCommand(program: Command, args: string[]): string[] {
  const helpAt = args.findIndex((arg) => !arg.startsWith("-"));
  const topic = args[helpAt + 1];
  if (helpAt === -1 || args[helpAt] !== "help" || topic === undefined || topic.startsWith("-")) return args;
  const known = program.commands.some((command) => command.name() === topic || command.aliases().includes(topic));
  return known ? args : [...args.slice(0, helpAt), ...args.slice(helpAt + 1)];
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

