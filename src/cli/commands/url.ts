import { Command, Option } from "@commander-js/extra-typings";
import { OcibootError } from "../../errors.ts";
import { MediaType } from "../../oci/mediatypes.ts";
import { findLayer, LAYER_NAMES } from "../../ops/find-layer.ts";
import { flavorOption, platformOption, selectionFrom } from "../boot-file-options.ts";
import type { CliContext } from "../context.ts";
import { examples } from "../examples.ts";
import { globalOptions } from "../global-options.ts";
import { withRepository } from "./registry-access.ts";
import { formatGoIndentedJson } from "./store-output.ts";
import { loadRegistryClient } from "../registry-loader.ts";

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
      const request = await withRepository(name, global, context, async (repository, reference) => {
        const target = reference.digest ?? reference.tag ?? "latest";
        const headers: Record<string, string[]> = {};
        let url: string;
        let authorization: string | undefined;
        if (options.layer === undefined) {
          await repository.resolve(target, { signal: context.signal });
          headers["Accept"] = [MediaType.ociManifest];
          const client = await repository.client();
          url = new URL(`/v2/${repository.repository}/manifests/${target}`, client.endpoint.url).href;
          const { repositoryScope } = await loadRegistryClient();
          authorization = await client.authorizer.authorization([repositoryScope(repository.repository, ["pull"])], context.signal);
        } else {
          const role = LAYER_NAMES[options.layer];
          if (role === undefined) throw new OcibootError("USAGE", `Cannot print a URL: unknown layer ${options.layer}`);
          const selection = selectionFrom(options);
          const layer = await findLayer(repository, target, role, selection, context.signal);
          ({ url, authorization } = await repository.blobRequest(layer));
        }
        if (authorization !== undefined) headers["Authorization"] = [authorization];
        return Object.keys(headers).length > 0 ? { headers, url } : { url };
      });
      context.stdout.write(formatGoIndentedJson(request));
    });
}
