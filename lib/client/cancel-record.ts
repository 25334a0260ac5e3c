/**
 * The cancel request of a TaskInstance (`tydra:cancel:<id>`): written by `cancel` before anything
 * else, so a master or node that picks the job up later sees it; read to tell a TaskInstance
 * cancelled before it started (its job removed) from an unknown id.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from '../redis/keys.js';

/** How long a cancel request is remembered (it only matters until the TaskInstance ends). */
const CANCEL_TTL_SECONDS = 7 * 24 * 3600;

export interface CancelRecord {
  /** The pinned reference of the cancelled TaskInstance ('' if unknown). */
  ref: string;
  /** When it was asked to stop (ms since the epoch; 0 if unknown). */
  at: number;
}

export async function writeCancelRecord(redis: Redis, keys: Keyspace, id: string, ref: string): Promise<void> {
  await redis.set(keys.cancel(id), JSON.stringify({ ref, at: Date.now() }), 'EX', CANCEL_TTL_SECONDS);
}

export async function readCancelRecord(redis: Redis, keys: Keyspace, id: string): Promise<CancelRecord | undefined> {
  const text = await redis.get(keys.cancel(id));
  if (text === null) {
    return undefined;
  }
  try {
    const record = JSON.parse(text) as { ref?: unknown; at?: unknown };
    return {
      ref: typeof record.ref === 'string' ? record.ref : '',
      at: typeof record.at === 'number' ? record.at : 0,
    };
  } catch {
    return { ref: '', at: 0 };
  }
}
