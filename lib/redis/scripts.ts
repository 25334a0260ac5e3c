/**
 * Loads tydra's Lua scripts from `commands/` and registers them on an ioredis client, which then
 * runs them with EVALSHA (falling back to EVAL once after a Redis restart or SCRIPT FLUSH).
 * Each file is named `<command>-<number of keys>.lua` and documents its keys, arguments and
 * results in its header. Nothing outside `lib/redis` calls a script by name: the typed wrappers
 * in `package-commands.ts` and `sweep-commands.ts` build each script's KEYS and ARGV in one place.
 *
 * A script may pull in one of the installed BullMQ's own Lua functions with
 * `--- @include "bullmq:<name>"` (a file of BullMQ's `commands/includes`, with the includes it
 * needs, each once): a script that changes BullMQ's keys then does it exactly as BullMQ does.
 * `--- @include "tydra:<name>"` pulls in one of tydra's own, from `commands/includes`: a step that
 * two scripts share (a reference's release) is written once.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { ChainableCommander, Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';

/** The scripts, by the name they are registered under. */
export type ScriptName =
  | 'commitDeploy'
  | 'takeRef'
  | 'resolveVersion'
  | 'releaseRef'
  | 'readSettled'
  | 'pruneVersion'
  | 'undeploy'
  | 'takeBackNodeJob'
  | 'retireNode'
  | 'recordUnits'
  | 'initParallel'
  | 'releaseIdempotency'
  | 'dropRun'
  | 'listNodes';

const FILES: Readonly<Record<ScriptName, string>> = {
  commitDeploy: 'commit-deploy-8.lua',
  takeRef: 'take-ref-6.lua',
  resolveVersion: 'resolve-version-5.lua',
  releaseRef: 'release-ref-3.lua',
  readSettled: 'read-settled-5.lua',
  pruneVersion: 'prune-version-8.lua',
  undeploy: 'undeploy-3.lua',
  takeBackNodeJob: 'take-back-node-job-7.lua',
  retireNode: 'retire-node-8.lua',
  recordUnits: 'record-units-4.lua',
  initParallel: 'init-parallel-1.lua',
  releaseIdempotency: 'release-idempotency-1.lua',
  dropRun: 'drop-run-2.lua',
  listNodes: 'list-nodes-1.lua',
};

/**
 * Where each include source's files are: the installed BullMQ's (the package has no `exports` map,
 * so its files are reachable), and tydra's own.
 */
const INCLUDE_DIRS: Readonly<Record<string, string>> = {
  bullmq: join(dirname(createRequire(import.meta.url).resolve('bullmq/package.json')), 'dist/esm/commands/includes'),
  tydra: fileURLToPath(new URL('./commands/includes', import.meta.url)),
};
const INCLUDE = /^--- @include "([^"]+)"\s*$/gm;

/**
 * Replaces each include line with the function's source, its own includes first, each once. A
 * script names the source (`bullmq:` or `tydra:`); an included file's own includes, unprefixed
 * (BullMQ writes `"includes/<name>"` or `"<name>"`), come from that file's source.
 */
function resolveIncludes(lua: string, included = new Set<string>(), within?: string): string {
  return lua.replace(INCLUDE, (_line, target: string) => {
    const [, prefix, name] = /^(?:(bullmq|tydra):)?(?:includes\/)?([A-Za-z]+)$/.exec(target) ?? [];
    const source = prefix ?? within;
    if (source === undefined || name === undefined) {
      throw new IllegalStateError(
        `a Lua script includes ${JSON.stringify(target)}; only bullmq:<name> and tydra:<name> are supported`,
      );
    }
    const key = `${source}:${name}`;
    if (included.has(key)) {
      return '';
    }
    included.add(key);
    return resolveIncludes(readFileSync(join(INCLUDE_DIRS[source] ?? '', `${name}.lua`), 'utf8'), included, source);
  });
}

const SCRIPTS = Object.entries(FILES).map(([name, file]) => ({
  name: name as ScriptName,
  numberOfKeys: Number(/-(\d+)\.lua$/.exec(file)?.[1]),
  lua: resolveIncludes(readFileSync(new URL(`./commands/${file}`, import.meta.url), 'utf8')),
}));
const KEY_COUNTS = new Map(SCRIPTS.map(({ name, numberOfKeys }) => [name, numberOfKeys]));

/** One call of a script: its keys and arguments in the order its header lists them. */
export interface ScriptCall {
  script: ScriptName;
  keys: string[];
  argv: string[];
}

type ScriptMethod<R> = (...keysThenArgs: string[]) => R;

const DEFINED = new WeakSet<Redis>();

function defineScripts(redis: Redis): void {
  if (!DEFINED.has(redis)) {
    for (const { name, numberOfKeys, lua } of SCRIPTS) {
      redis.defineCommand(name, { numberOfKeys, lua });
    }
    DEFINED.add(redis);
  }
}

function flatten(call: ScriptCall): string[] {
  if (KEY_COUNTS.get(call.script) !== call.keys.length) {
    throw new IllegalStateError(
      `the ${call.script} script takes ${KEY_COUNTS.get(call.script)} keys, was given ${call.keys.length}`,
    );
  }
  return [...call.keys, ...call.argv];
}

/** Runs one script call and returns its raw reply. */
export async function runScript(redis: Redis, call: ScriptCall): Promise<unknown> {
  defineScripts(redis);
  const method = (redis as unknown as Record<ScriptName, ScriptMethod<Promise<unknown>>>)[call.script];
  return method.apply(redis, flatten(call));
}

/** Runs many script calls in one pipeline (one round trip) and returns their raw replies in order. */
export async function runScripts(redis: Redis, calls: readonly ScriptCall[]): Promise<unknown[]> {
  defineScripts(redis);
  const pipeline = redis.pipeline();
  for (const call of calls) {
    const method = (pipeline as unknown as Record<ScriptName, ScriptMethod<ChainableCommander>>)[call.script];
    method.apply(pipeline, flatten(call));
  }
  const replies = (await pipeline.exec()) ?? [];
  return calls.map((call, index) => {
    const [error, reply] = replies[index] ?? [new IllegalStateError(`no reply to the ${call.script} script`), null];
    if (error !== null) {
      throw error;
    }
    return reply;
  });
}
