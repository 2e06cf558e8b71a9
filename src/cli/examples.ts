/**
 * The "Examples:" section of a command's help, in the one spelling every command uses: a test
 * reads these sections back from `--help` and runs each line against a real registry, so an
 * example that stops working fails the build (docs/commands.md, "Help").
 */
export function examples(lines: readonly string[]): string {
  return `\nExamples:\n${lines.map((line) => `  ${line}`).join("\n")}\n`;
}
