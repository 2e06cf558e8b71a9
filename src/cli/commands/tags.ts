import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { listTags } from "../../ops/manifest-read.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { resolvePath } from "../paths.ts";
import { openStore } from "../sources.ts";

/** `ociboot tags REPO`: a repository's tags (or a layout's reference names), as `crane ls` and `skopeo list-tags`. */
export function tagsCommand(context: CliContext) {
  return new Command("tags")
    .description("list the tags of a registry repository (Link pages followed, bounded), or the reference names of oci:DIR / oci-archive:FILE")
    .argument("<repository>", "registry repository (host/repo, no tag), oci:DIR or oci-archive:FILE")
    .option("--json", 'print {"name": REPOSITORY, "tags": [...]} as JSON')
    .addHelpText("after", examples(["ociboot tags 127.0.0.1:5000/os/metal", "ociboot tags oci:./onmetal --json"]))
    .action(async (repository, options, command) => {
      const global = globalOptions(command as never, context);
      const opened = await openStore(repository, global, context);
      try {
        if (opened.reference !== undefined) {
          throw new OcibootError("USAGE", `Cannot list the tags of ${repository}: name the repository without a tag or digest`);
        }
        if (opened.location.kind === "layout" && !existsSync(join(resolvePath(context, opened.location.path), "index.json"))) {
          throw new OcibootError("NOT_FOUND", `Cannot list the tags of ${repository}: there is no OCI layout (index.json) there`);
        }
        const tags = await listTags(opened.store, { signal: context.signal });
        context.stdout.write(options.json ? `${JSON.stringify({ name: repository, tags }, null, 2)}\n` : tags.map((tag) => `${tag}\n`).join(""));
      } finally {
        await opened.close();
      }
    });
}
