import type { Command } from "@commander-js/extra-typings";
import type { CliContext } from "../context.ts";
import { fetchCommand } from "./fetch.ts";
import { verifyCommand } from "./verify.ts";
import { buildCommand } from "./build.ts";
import { copyCommand } from "./copy.ts";
import { deleteCommand } from "./delete.ts";
import { importCommand } from "./import.ts";
import { inspectCommand } from "./inspect.ts";
import { listCommand } from "./list.ts";
import { loginCommand } from "./login.ts";
import { logoutCommand } from "./logout.ts";
import { pruneCommand } from "./prune.ts";
import { pullCommand } from "./pull.ts";
import { pushCommand } from "./push.ts";
import { tagCommand } from "./tag.ts";
import { urlCommand } from "./url.ts";
import { attachCommand } from "./attach.ts";
import { discoverCommand } from "./discover.ts";
import { infoImageCommand } from "./info-image.ts";
import { packCommand } from "./pack.ts";
import { tagsCommand } from "./tags.ts";
import { manifestCommand } from "./manifest.ts";
import { digestCommand } from "./digest.ts";
import { completionCommand } from "./completion.ts";
import { signCommand } from "./sign.ts";
import { versionCommand } from "./version.ts";

/** Every command's factory; one file per command. */
export const COMMANDS: ReadonlyArray<(context: CliContext) => Command<any, any, any>> = [
  fetchCommand,
  verifyCommand,
  buildCommand,
  listCommand,
  tagCommand,
  inspectCommand,
  deleteCommand,
  pruneCommand,
  importCommand,
  pushCommand,
  pullCommand,
  copyCommand,
  urlCommand,
  loginCommand,
  logoutCommand,
  attachCommand,
  discoverCommand,
  infoImageCommand,
  packCommand,
  tagsCommand,
  manifestCommand,
  digestCommand,
  completionCommand,
  signCommand,
  versionCommand,
];
