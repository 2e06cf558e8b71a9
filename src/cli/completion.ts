import type { Command, Option } from "@commander-js/extra-typings";

/**
 * Shell completion scripts generated from the command tree at run time, so a new command, option
 * or fixed value is completed the moment it exists (docs/commands.md, "Shell completion").
 */

export type Shell = "bash" | "zsh" | "fish";
export const SHELLS: readonly Shell[] = ["bash", "zsh", "fish"];

/** Fixed values of an option whose argument is a comma-separated list (`--role kernel,initrd`). */
const listValues = new WeakMap<object, readonly string[]>();

/** Marks an option as taking a comma-separated list of these values, for completion. */
export function completesAsList<T extends object>(option: T, values: readonly string[]): T {
  listValues.set(option, values);
  return option;
}

interface OptionSpec {
  flags: string[];
  description: string;
  /** undefined: a flag; []: a free value (a file, a reference); else the fixed values. */
  values: readonly string[] | undefined;
  list: boolean;
}

interface CommandSpec {
  names: string[];
  summary: string;
  options: OptionSpec[];
  /** Fixed values of the first argument (`completion bash|zsh|fish`). */
  argumentValues: readonly string[];
}

interface Tree {
  name: string;
  options: OptionSpec[];
  commands: CommandSpec[];
}

function optionSpec(option: Option): OptionSpec {
  const flags = [option.short, option.long].filter((flag): flag is string => typeof flag === "string");
  const list = listValues.get(option);
  const takesValue = option.required || option.optional;
  const values = !takesValue ? undefined : (list ?? option.argChoices ?? []);
  return { flags, description: firstLine(option.description), values, list: list !== undefined };
}

const HELP: OptionSpec = { flags: ["-h", "--help"], description: "print help", values: undefined, list: false };

function treeOf(program: Command): Tree {
  const visible = (option: Option) => !option.hidden;
  const commands: CommandSpec[] = program.commands.map((command) => ({
    names: [command.name(), ...command.aliases()],
    summary: firstLine(command.summary() || command.description()),
    options: [...command.options.filter(visible).map((option) => optionSpec(option as Option)), HELP],
    argumentValues: command.registeredArguments[0]?.argChoices ?? [],
  }));
  commands.push({ names: ["help"], summary: "print help for a command", options: [], argumentValues: [] });
  const options = [...program.options.filter(visible).map((option) => optionSpec(option as Option)), HELP];
  return { name: program.name(), options, commands };
}

function firstLine(text: string): string {
  return (text.split("\n")[0] ?? "").trim();
}

/** The completion script for `shell`, from the program's commands and options. */
export function completionScript(program: Command, shell: Shell): string {
  const tree = treeOf(program);
  switch (shell) {
    case "bash":
      return bashScript(tree);
    case "zsh":
      return zshScript(tree);
    case "fish":
      return fishScript(tree);
  }
}

const valueFlags = (options: readonly OptionSpec[]) => options.filter((option) => option.values !== undefined).flatMap((option) => option.flags);
const allFlags = (options: readonly OptionSpec[]) => options.flatMap((option) => option.flags);
const shellWord = (text: string) => (/^[A-Za-z0-9_.,:/=+@%-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`);

function bashScript(tree: Tree): string {
  const fn = `_${tree.name.replace(/\W/g, "_")}`;
  const commandNames = tree.commands.map((command) => command.names[0] as string);
  const lines = [
    `# bash completion for ${tree.name}, generated from its command tree: source <(${tree.name} completion bash)`,
    `${fn}_values() {`,
    `  local prefix="" word="$cur"`,
    `  if [[ $2 == list && $cur == *,* ]]; then prefix="\${cur%,*},"; word="\${cur##*,}"; fi`,
    `  COMPREPLY=( $(compgen -P "$prefix" -W "$1" -- "$word") )`,
    `}`,
    `${fn}() {`,
    `  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="" cmd="" i w`,
    `  (( COMP_CWORD > 0 )) && prev="\${COMP_WORDS[COMP_CWORD-1]}"`,
    // --role=ke: bash splits at "=", so the option is one word further back.
    `  if [[ $cur == = ]]; then cur=""; elif [[ $prev == = && COMP_CWORD -gt 1 ]]; then prev="\${COMP_WORDS[COMP_CWORD-2]}"; fi`,
    `  for (( i = 1; i < COMP_CWORD; i++ )); do`,
    `    w="\${COMP_WORDS[i]}"`,
    `    case "$w" in`,
    ...(valueFlags(tree.options).length > 0 ? [`      ${valueFlags(tree.options).join("|")}) (( i++ )) ;;`] : []),
    `      -*) ;;`,
    `      *) cmd="$w"; break ;;`,
    `    esac`,
    `  done`,
    `  local words="" takes_value=""`,
    `  case "$cmd" in`,
    `    "") words=${shellWord(allFlags(tree.options).join(" "))}; takes_value=${shellWord(valueFlags(tree.options).join(" "))} ;;`,
    `    help) COMPREPLY=( $(compgen -W ${shellWord(commandNames.join(" "))} -- "$cur") ); return ;;`,
  ];
  for (const command of tree.commands) {
    if (command.names[0] === "help") continue;
    lines.push(`    ${command.names.join("|")}) words=${shellWord(allFlags(command.options).join(" "))}; takes_value=${shellWord(valueFlags(command.options).join(" ") || " ")} ;;`);
  }
  lines.push(`  esac`, `  case "$cmd $prev" in`);
  for (const [names, options] of [[[""], tree.options] as const, ...tree.commands.map((command) => [command.names, command.options] as const)]) {
    for (const option of options) {
      if (option.values === undefined || option.values.length === 0) continue;
      const patterns = names.flatMap((name) => option.flags.map((flag) => `"${name} ${flag}"`));
      lines.push(`    ${patterns.join("|")}) ${fn}_values ${shellWord(option.values.join(" "))}${option.list ? " list" : ""}; return ;;`);
    }
  }
  lines.push(`  esac`, `  case "$cmd" in`);
  for (const command of tree.commands) {
    if (command.argumentValues.length === 0) continue;
    lines.push(`    ${command.names.join("|")}) [[ $cur != -* ]] && { ${fn}_values ${shellWord(command.argumentValues.join(" "))}; return; } ;;`);
  }
  lines.push(
    `  esac`,
    // A free value (a file, a directory, a reference): leave it to bash's default completion.
    `  if [[ " $takes_value " == *" $prev "* ]]; then return; fi`,
    `  if [[ $cur == -* ]]; then COMPREPLY=( $(compgen -W "$words" -- "$cur") )`,
    `  elif [[ -z $cmd ]]; then COMPREPLY=( $(compgen -W ${shellWord(commandNames.join(" "))} -- "$cur") ); fi`,
    `}`,
    `complete -o default -o bashdefault -F ${fn} ${tree.name}`,
    "",
  );
  return lines.join("\n");
}

/** Text inside a zsh `_arguments` spec `'--flag[description]:…'`: brackets, colons and quotes escaped. */
function zshText(text: string): string {
  return text.replace(/\\/g, "\\\\").replace(/'/g, `'\\''`).replace(/([[\]:])/g, "\\$1");
}

function zshOptionSpecs(options: readonly OptionSpec[]): string[] {
  const specs: string[] = [];
  for (const option of options) {
    const exclusive = option.flags.length > 1 ? `(${option.flags.join(" ")})` : "";
    for (const flag of option.flags) {
      let spec = `${exclusive}${flag}[${zshText(option.description)}]`;
      if (option.values !== undefined) {
        const name = (option.flags.at(-1) ?? "value").replace(/^-+/, "");
        if (option.values.length === 0) spec += `:${name}:_files`;
        else if (option.list) spec += `:${name}:_sequence compadd - ${option.values.join(" ")}`;
        else spec += `:${name}:(${option.values.join(" ")})`;
      }
      specs.push(`'${spec}'`);
    }
  }
  return specs;
}

function zshScript(tree: Tree): string {
  const fn = `_${tree.name.replace(/\W/g, "_")}`;
  const described = tree.commands.flatMap((command) => command.names.map((name) => `'${zshText(name)}:${zshText(command.summary)}'`));
  const lines = [
    `#compdef ${tree.name}`,
    `# zsh completion for ${tree.name}, generated from its command tree: source <(${tree.name} completion zsh)`,
    `${fn}_commands() {`,
    `  local -a commands`,
    `  commands=(`,
    ...described.map((entry) => `    ${entry}`),
    `  )`,
    `  _describe -t commands '${tree.name} command' commands`,
    `}`,
    `${fn}() {`,
    `  local curcontext="$curcontext" state line ret=1`,
    `  typeset -A opt_args`,
    `  _arguments -C \\`,
    ...zshOptionSpecs(tree.options).map((spec) => `    ${spec} \\`),
    `    '1: :${fn}_commands' \\`,
    `    '*:: :->command' && ret=0`,
    `  case $state in`,
    `    command)`,
    `      curcontext="\${curcontext%:*:*}:${tree.name}-\${words[1]}:"`,
    `      case \${words[1]} in`,
    `        help) _arguments '1: :${fn}_commands' && ret=0 ;;`,
  ];
  for (const command of tree.commands) {
    if (command.names[0] === "help") continue;
    lines.push(`        ${command.names.join("|")})`, `          _arguments -s \\`);
    for (const spec of zshOptionSpecs(command.options)) lines.push(`            ${spec} \\`);
    const argument = command.argumentValues.length > 0 ? `'1: :(${command.argumentValues.join(" ")})'` : `'*: :_files'`;
    lines.push(`            ${argument} && ret=0 ;;`);
  }
  lines.push(
    `      esac ;;`,
    `  esac`,
    `  return ret`,
    `}`,
    `if [[ "\${funcstack[1]}" == "${fn}" ]]; then`,
    `  ${fn} "$@"`,
    `else`,
    `  compdef ${fn} ${tree.name}`,
    `fi`,
    "",
  );
  return lines.join("\n");
}

function fishText(text: string): string {
  return `'${text.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

function fishOption(name: string, condition: string, option: OptionSpec, listHelper: string): string {
  const parts = [`complete -c ${name} -n ${fishText(condition)}`];
  for (const flag of option.flags) parts.push(flag.startsWith("--") ? `-l ${flag.slice(2)}` : `-s ${flag.slice(1)}`);
  if (option.values !== undefined) {
    if (option.values.length === 0) parts.push("-r");
    else if (option.list) parts.push(`-x -a ${fishText(`(${listHelper} ${option.values.join(" ")})`)}`);
    else parts.push(`-x -a ${fishText(option.values.join(" "))}`);
  }
  parts.push(`-d ${fishText(option.description)}`);
  return parts.join(" ");
}

function fishScript(tree: Tree): string {
  const name = tree.name;
  const listHelper = `__${name.replace(/\W/g, "_")}_comma_list`;
  const atCommand = "__fish_use_subcommand";
  const lines = [
    `# fish completion for ${name}, generated from its command tree: ${name} completion fish | source`,
    `function ${listHelper}`,
    `    set -l prefix (string replace -r '[^,]*$' '' -- (commandline -ct))`,
    `    for value in $argv`,
    `        echo $prefix$value`,
    `    end`,
    `end`,
  ];
  for (const option of tree.options) lines.push(fishOption(name, atCommand, option, listHelper));
  for (const command of tree.commands) {
    for (const commandName of command.names) lines.push(`complete -c ${name} -n ${atCommand} -f -a ${fishText(commandName)} -d ${fishText(command.summary)}`);
  }
  const allNames = tree.commands.filter((command) => command.names[0] !== "help").flatMap((command) => command.names);
  lines.push(`complete -c ${name} -n ${fishText("__fish_seen_subcommand_from help")} -f -a ${fishText(allNames.join(" "))}`);
  for (const command of tree.commands) {
    const condition = `__fish_seen_subcommand_from ${command.names.join(" ")}`;
    for (const option of command.options) lines.push(fishOption(name, condition, option, listHelper));
    if (command.argumentValues.length > 0) lines.push(`complete -c ${name} -n ${fishText(condition)} -f -a ${fishText(command.argumentValues.join(" "))}`);
  }
  lines.push("");
  return lines.join("\n");
}
