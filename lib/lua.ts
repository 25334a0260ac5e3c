/**
 * Loads tydra's Lua scripts from `commands/` and registers them on an ioredis client, which then
 * runs them with EVALSHA (falling back to EVAL once after a Redis restart or SCRIPT FLUSH).
 */
import { readFileSync } from 'node:fs';

import type { Redis } from 'ioredis';

/** Status codes of `commit-deploy-5.lua`. */
export enum CommitDeployStatus {
  Stored = 1,
  AlreadyStored = 0,
  UploadMissing = -1,
}

export interface TydraCommands {
  commitDeploy(upload: string, blob: string, versions: string, latest: string, packages: string, sha1: string, versionJson: string, now: string, name: string): Promise<CommitDeployStatus>;
}

function script(file: string): string {
  return readFileSync(new URL(`./commands/${file}`, import.meta.url), 'utf8');
}

const COMMIT_DEPLOY = script('commit-deploy-5.lua');

/** The client, with tydra's scripts defined on it (idempotent). */
export function withCommands(redis: Redis): Redis & TydraCommands {
  const client = redis as Redis & Partial<TydraCommands>;
  if (client.commitDeploy === undefined) {
    redis.defineCommand('commitDeploy', { numberOfKeys: 5, lua: COMMIT_DEPLOY });
  }
  return redis as Redis & TydraCommands;
}
