import { Argument, Command } from "@commander-js/extra-typings";
import { completionScript, SHELLS } from "../completion.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";

/** `ociboot completion bash|zsh|fish`: a completion script made from the command tree, so it never drifts. */
export function completionCommand(context: CliContext) {
  return new Command("completion")
    .description("print a shell completion script (commands, options and their fixed values), made from this ociboot's own command tree")
    .addArgument(new Argument("<shell>", "the shell").choices(SHELLS))
    .addHelpText(
      "after",
      examples([
        "source <(ociboot completion bash)                                 # this bash session; add it to ~/.bashrc to keep it",
        "ociboot completion zsh > ~/.zfunc/_ociboot                        # with fpath=(~/.zfunc $fpath) before compinit",
        "ociboot completion fish > ~/.config/fish/completions/ociboot.fish",
      ]),
    )
    .action((shell, _options, command) => {
      let root: Command = command as unknown as Command;
      while (root.parent) root = root.parent as Command;
      context.stdout.write(completionScript(root, shell));
    });
}
