/**
 * Typed wrapper of `read-settled-5.lua`: the master's settle step reads its TaskInstance's
 * finished child and, when the child completed, releases the package reference in the same round
 * trip (see the script's header for why that release is safe to make there).
 */
import type { Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';
import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

export interface ReadSettledArgs {
  /** The TaskInstance's queue (`tasks`). */
  tasksQueue: string;
  instanceId: string;
  /** The package version the TaskInstance holds a reference on. */
  name: string;
  sha1: string;
  now: number;
}

export interface SettledChildren {
  /** Child job key → its return value as JSON; when not empty, the reference has been released. */
  processed: Record<string, string>;
  /** Child job key → its failure, for children whose failure BullMQ ignores; read only when `processed` is empty. */
  failed: Record<string, string>;
}

/** The TaskInstance's settled children; releases its reference when one completed. */
export async function readSettled(redis: Redis, keys: Keyspace, args: ReadSettledArgs): Promise<SettledChildren> {
  const { tasksQueue, instanceId, name, sha1 } = args;
  const reply = await runScript(redis, {
    script: 'readSettled',
    keys: [
      keys.queueKey(tasksQueue, `${instanceId}:processed`),
      keys.queueKey(tasksQueue, `${instanceId}:failed`),
      keys.packageHolders(name, sha1),
      keys.refs,
      keys.packageIdle(name),
    ],
    argv: [instanceId, sha1, String(args.now)],
  });
  if (!Array.isArray(reply) || reply.length !== 2 || !reply.every(isFlatStrings)) {
    throw new IllegalStateError(`the readSettled script replied ${JSON.stringify(reply)}, expected [[…], […]]`);
  }
  const [processed, failed] = reply as [string[], string[]];
  return { processed: pairs(processed), failed: pairs(failed) };
}

function isFlatStrings(value: unknown): value is string[] {
  return Array.isArray(value) && value.length % 2 === 0 && value.every((item) => typeof item === 'string');
}

/** A flat HGETALL reply as an object. */
function pairs(flat: readonly string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (let index = 0; index < flat.length; index += 2) {
    result[flat[index] as string] = flat[index + 1] as string;
  }
  return result;
}
