import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { referenceTarget } from "../../oci/reference.ts";
import { directRequestFor } from "../../ops/direct-request.ts";
import { LAYER_NAMES } from "../../ops/find-layer.ts";
import { flavorOption, platformOption, selectionFrom } from "../boot-file-options.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { withRepository } from "./registry-access.ts";
import { formatGoIndentedJson } from "./store-output.ts";

/**
 * `ociboot url REF [--layer kernel]`: a URL and the headers to fetch it with any HTTP client, as
 * onmetal-image prints them (`curl -L -H "Authorization: …" URL`). The token is the one the
 * registry's own challenge led to, scoped to pull this repository.
 */
export function urlCommand(context: CliContext) {
  return new Command("url")
    .description("print {headers, url} for fetching a remote manifest or one of its layers with curl")
    .argument("<ref>", "registry reference")
    .addOption(new Option("--layer <layer>", "a layer instead of the manifest").choices(Object.keys(LAYER_NAMES)))
    .addOption(platformOption())
    .addOption(flavorOption())
    .option("--json", "the same output (it is JSON already)")
    .addHelpText(
      "after",
      examples([
        "ociboot url 127.0.0.1:5000/os/single:1 --layer kernel",
        'curl -sfL -o vmlinuz.curl "$(ociboot url 127.0.0.1:5000/os/metal:today --layer kernel --platform linux/amd64 | jq -r .url)"   # anonymous pull',
      ]),
    )
    .action(async (name, options, command) => {
      const global = globalOptions(command as never, context);
      const role = options.layer === undefined ? undefined : LAYER_NAMES[options.layer];
      if (options.layer !== undefined && role === undefined) throw new OcibootError("USAGE", `Cannot print a URL: unknown layer ${options.layer}`);
      const request = await withRepository(name, global, context, (repository, reference) =>
        directRequestFor(repository, referenceTarget(reference), {
          ...(role !== undefined ? { role, selection: selectionFrom(options) } : {}),
          signal: context.signal,
        }),
      );
      // As onmetal-image prints it: headers first, and no "headers" key when there are none.
      context.stdout.write(formatGoIndentedJson(Object.keys(request.headers).length > 0 ? { headers: request.headers, url: request.url } : { url: request.url }));
    });
}
