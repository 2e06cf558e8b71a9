/**
 * Reads the fields of an os-release file (freedesktop.org os-release(5)): `KEY=value` lines,
 * values optionally in double or single quotes, `\` escapes inside double quotes, `#` comments.
 * Lines that are not assignments are skipped, as systemd skips them.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$/.exec(line);
    if (!match) continue;
    fields[match[1] as string] = unquote(match[2] as string);
  }
  return fields;
}

function unquote(value: string): string {
  if (value.length >= 2 && value.startsWith("'") && value.endsWith("'")) return value.slice(1, -1);
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) return value.slice(1, -1).replace(/\\(.)/g, "$1");
  return value;
}
