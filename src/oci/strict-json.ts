import { visit } from "jsonc-parser";

/** Why a text is not strict JSON: a syntax error, or an object that names one member twice. */
export class StrictJsonError extends Error {
  override readonly name = "StrictJsonError";
}

/**
 * Parses JSON text as I-JSON (RFC 7493 §2.3) asks: member names unique within each object.
 * Names that differ only in letter case count as the same name too, because Go's
 * `encoding/json` (registries, onmetal-image, containerd) matches struct fields
 * case-insensitively: `{"layers": A, "Layers": B}` would be read as B there and as A here, two
 * tools seeing two images under one digest. docs/strict-json.md tells why this is a library
 * scan after `JSON.parse`, and what it costs.
 *
 * @throws StrictJsonError for invalid JSON or a duplicate member name.
 */
export function parseStrictJson(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StrictJsonError(`not valid JSON (${(error as Error).message})`, { cause: error });
  }
  // JSON.parse has accepted the syntax; the scan only looks at the member names it kept silent about.
  const open: Map<string, string>[] = [];
  let duplicate: string | undefined;
  visit(
    text,
    {
      onObjectBegin: () => {
        open.push(new Map());
      },
      onObjectEnd: () => {
        open.pop();
      },
      onObjectProperty: (property) => {
        const names = open[open.length - 1];
        if (names === undefined || duplicate !== undefined) return;
        const folded = foldName(property);
        const earlier = names.get(folded);
        if (earlier !== undefined) {
          duplicate = earlier === property ? `"${clip(property)}"` : `"${clip(property)}" (also "${clip(earlier)}")`;
          return;
        }
        names.set(folded, property);
      },
    },
    { disallowComments: true, allowTrailingComma: false },
  );
  if (duplicate !== undefined) throw new StrictJsonError(`duplicate member name ${duplicate} in one object`);
  return value;
}

/** Case folding close to Go's `bytes.EqualFold`, which maps both the Kelvin sign and `K` to `k`. */
function foldName(name: string): string {
  return name.toUpperCase().toLowerCase();
}

function clip(name: string): string {
  return name.length > 60 ? `${name.slice(0, 60)}…` : name;
}
