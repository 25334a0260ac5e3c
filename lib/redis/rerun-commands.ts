/**
 * Typed wrapper of `drop-run-2.lua`: what the ended run of a retried TaskInstance left (its
 * children, its record of their ends, a parallel one's failed batches) goes before it runs again.
 */
import type { Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';
import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

export interface DropRunArgs {
  /** The TaskInstance's queue (`tasks`). */
  tasksQueue: string;
  instanceId: string;
  /** The workunits queue, whose failed batches of a parallel TaskInstance go too; absent for other kinds. */
  workunitsQueue?: string;
}

/** Removes the ended run's leftovers; returns how many jobs went, or `'running'` when a child is still held. */
export async function dropRun(redis: Redis, keys: Keyspace, args: DropRunArgs): Promise<number | 'running'> {
  const workunits = args.workunitsQueue ?? 'workunits';
  const reply = await runScript(redis, {
    script: 'dropRun',
    keys: [keys.queueKey(args.tasksQueue, args.instanceId), keys.queueKey(workunits, 'failed')],
    argv: [keys.queueKey(workunits, ''), args.workunitsQueue === undefined ? '' : `${args.instanceId}.b`],
  });
  if (typeof reply !== 'number') {
    throw new IllegalStateError(`the dropRun script replied ${JSON.stringify(reply)}`);
  }
  return reply < 0 ? 'running' : reply;
}
