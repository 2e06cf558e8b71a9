/** One authentication challenge of a `WWW-Authenticate` header (RFC 9110 §11.6.1). */
export interface Challenge {
  /** Lower-case scheme, such as `bearer` or `basic`. */
  scheme: string;
  /** Parameters with lower-case names; quoted values unescaped. */
  parameters: Record<string, string>;
  /** A token68 value, for schemes that use one instead of parameters. */
  token68?: string;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

/**
 * Parses every challenge of one or more `WWW-Authenticate` header values. Tolerant of what real
 * registries send: several challenges in one header, commas and escaped quotes inside quoted
 * values, extra whitespace, empty list elements, and unquoted values. Never throws.
 */
export function parseWwwAuthenticate(values: string | readonly string[]): Challenge[] {
  const challenges: Challenge[] = [];
  for (const value of typeof values === "string" ? [values] : values) {
    challenges.push(...parseOne(value));
  }
  return challenges;
}

function parseOne(input: string): Challenge[] {
  const challenges: Challenge[] = [];
  let position = 0;
  let current: Challenge | undefined;

  const skip = (pattern: RegExp) => {
    while (position < input.length && pattern.test(input.charAt(position))) position++;
  };
  const readToken = (): string => {
    const start = position;
    while (position < input.length && TOKEN_CHAR.test(input.charAt(position))) position++;
    return input.slice(start, position);
  };
  // Lenient: some servers leave URLs unquoted, which a strict token would cut at the colon.
  const readBare = (): string => {
    const start = position;
    while (position < input.length && !/[\s,]/.test(input.charAt(position))) position++;
    return input.slice(start, position);
  };
  const readQuoted = (): string => {
    // At the opening quote.
    position++;
    let value = "";
    while (position < input.length) {
      const char = input.charAt(position);
      if (char === "\\" && position + 1 < input.length) {
        value += input.charAt(position + 1);
        position += 2;
        continue;
      }
      position++;
      if (char === '"') return value;
      value += char;
    }
    return value;
  };

  while (position < input.length) {
    skip(/[\s,]/);
    if (position >= input.length) break;
    const start = position;
    const word = readToken();
    if (word === "") {
      // Garbage: skip to the next list element.
      while (position < input.length && input.charAt(position) !== ",") position++;
      continue;
    }
    skip(/[ \t]/);
    if (current !== undefined && input.charAt(position) === "=" && !isToken68Tail(input, position)) {
      position++;
      skip(/[ \t]/);
      const value = input.charAt(position) === '"' ? readQuoted() : readBare();
      current.parameters[word.toLowerCase()] = value;
      continue;
    }
    if (current !== undefined && input.charAt(position) === "=") {
      // `name=` with nothing after it in a parameter list: an empty value.
      position++;
      current.parameters[word.toLowerCase()] = "";
      continue;
    }
    // A new challenge begins with its scheme.
    position = start + word.length;
    current = { scheme: word.toLowerCase(), parameters: {} };
    challenges.push(current);
    skip(/[ \t]/);
    const token68 = readToken68(input, position);
    if (token68 !== undefined) {
      current.token68 = token68.value;
      position = token68.end;
    }
  }
  return challenges;
}

/** True when the `=` at `position` ends the input or the list element: `name=` with no value. */
function isToken68Tail(input: string, position: number): boolean {
  let index = position;
  while (input.charAt(index) === "=") index++;
  while (input.charAt(index) === " " || input.charAt(index) === "\t") index++;
  return index >= input.length || input.charAt(index) === ",";
}

/** A token68 right after a scheme: characters of token68, then `=` padding, then end or comma. */
function readToken68(input: string, position: number): { value: string; end: number } | undefined {
  let index = position;
  while (index < input.length && TOKEN68_CHAR.test(input.charAt(index))) index++;
  if (index === position) return undefined;
  while (input.charAt(index) === "=") index++;
  let after = index;
  while (input.charAt(after) === " " || input.charAt(after) === "\t") after++;
  if (after < input.length && input.charAt(after) !== ",") return undefined;
  // `realm=` alone is a parameter with an empty value, not a token68.
  const value = input.slice(position, index);
  if (/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+=$/.test(value) && after < input.length) return undefined;
  return { value, end: after };
}
