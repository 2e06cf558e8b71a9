// npm ci's postinstall: puts the two pinned Node runtime tarballs the release embeds
// (scripts/release-runtime.json) into npm's own cache, so `npm run release` works offline after
// `npm ci`. They cannot be dependencies (docs/dependencies.md); release.mjs checks their integrity.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pin = JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), "release-runtime.json"), "utf8"));
const specs = Object.values(pin.packages).map((entry) => `${entry.name}@${pin.version}`);
execFileSync("npm", ["cache", "add", ...specs], { stdio: ["ignore", "ignore", "inherit"] });
