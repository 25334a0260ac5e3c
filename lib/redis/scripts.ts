/**
 * Loads tydra's Lua scripts from `commands/` and registers them on an ioredis client, which then
 * runs them with EVALSHA (falling back to EVAL once after a Redis restart or SCRIPT FLUSH).
 * Each file is named `<command>-<number of keys>.lua` and documents its keys, arguments and
 * results in its header.
 */
import { readFileSync } from 'node:fs';

import type { Redis } from 'ioredis';

/** Status codes of `commit-deploy-8.lua`. */
export enum CommitDeployStatus {
  Stored = 1,
  AlreadyStored = 0,
  UploadMissing = -1,
}

/** Status codes of `take-ref-6.lua`. */
export enum TakeRefStatus {
  Held = 1,
  Missing = 0,
  Undeployed = -1,
}

/** Verdicts of `prune-version-8.lua`. */
export type PruneVerdict = 'gone' | 'held' | 'leased' | 'latest' | 'grace' | 'eligible' | 'removed';

/** Keys first, then arguments, in the order each script's header lists them. */
export interface TydraCommands {
  commitDeploy(...keysThenArgs: string[]): Promise<CommitDeployStatus>;
  takeRef(...keysThenArgs: string[]): Promise<TakeRefStatus>;
  releaseRef(...keysThenArgs: string[]): Promise<0 | 1>;
  pruneVersion(...keysThenArgs: string[]): Promise<[PruneVerdict, number, (0 | 1)?]>;
  undeploy(...keysThenArgs: string[]): Promise<[number, string]>;
}

const COMMANDS: ReadonlyArray<[keyof TydraCommands, string]> = [
  ['commitDeploy', 'commit-deploy-8.lua'],
  ['takeRef', 'take-ref-6.lua'],
  ['releaseRef', 'release-ref-3.lua'],
  ['pruneVersion', 'prune-version-8.lua'],
  ['undeploy', 'undeploy-3.lua'],
];

const SCRIPTS = COMMANDS.map(([name, file]) => ({
  name,
  numberOfKeys: Number(/-(\d+)\.lua$/.exec(file)?.[1]),
  lua: readFileSync(new URL(`./commands/${file}`, import.meta.url), 'utf8'),
}));

const DEFINED = new WeakSet<Redis>();

/** The client, with tydra's scripts defined on it (idempotent). */
export function withCommands(redis: Redis): Redis & TydraCommands {
  if (!DEFINED.has(redis)) {
    for (const { name, numberOfKeys, lua } of SCRIPTS) {
      redis.defineCommand(name, { numberOfKeys, lua });
    }
    DEFINED.add(redis);
  }
  return redis as Redis & TydraCommands;
}
