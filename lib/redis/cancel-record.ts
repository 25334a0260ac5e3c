/**
 * The cancel request of a TaskInstance (`{NAME}:cancel:<id>`), one shape for every role that
 * writes or reads it: a client's cancel, and a master's of a sequence's steps (written before
 * anything else, so a master or node that picks the job up later sees it); a re-run's check of a
 * request left from the run before. For a TaskInstance cancelled before it started it is all that
 * is left, so it carries what `status()` and `runs()` show of it.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from './keys.js';

/** How long a cancel request is remembered (it only matters until the TaskInstance ends). */
const CANCEL_TTL_SECONDS = 7 * 24 * 3600;

export interface CancelRecord {
  /** The pinned reference of the cancelled TaskInstance ('' if unknown). */
  ref: string;
  /** When it was asked to stop (ms since the epoch; 0 if unknown). */
  at: number;
  /** When it was submitted (ms since the epoch); undefined in a record written without it. */
  submittedAt: number | undefined;
  /** A re-run: the id of the TaskInstance it re-ran. */
  rerunOf?: string;
  /** A step of a sequence: the sequence's TaskInstance id. */
  sequenceId?: string;
}

/**
 * Writes the cancel request of `id`, asked now. `keep: true` leaves a request already there as it
 * is (a master's cancel of steps must not replace the fuller one a client wrote of a step it
 * removed before it started).
 */
export async function writeCancelRecord(
  redis: Redis,
  keys: Keyspace,
  id: string,
  fields: Omit<CancelRecord, 'at' | 'submittedAt'> & { submittedAt?: number },
  options: { keep?: boolean } = {},
): Promise<void> {
  const record = JSON.stringify({ ...fields, at: Date.now() });
  if (options.keep === true) {
    await redis.set(keys.cancel(id), record, 'EX', CANCEL_TTL_SECONDS, 'NX');
  } else {
    await redis.set(keys.cancel(id), record, 'EX', CANCEL_TTL_SECONDS);
  }
}

export async function readCancelRecord(redis: Redis, keys: Keyspace, id: string): Promise<CancelRecord | undefined> {
  const text = await redis.get(keys.cancel(id));
  return text === null ? undefined : parseCancelRecord(text);
}

/** A stored request as a record; one that cannot be read is an old one (`at` 0). */
export function parseCancelRecord(text: string): CancelRecord {
  try {
    const record = JSON.parse(text) as Record<string, unknown>;
    const { rerunOf, sequenceId } = record;
    return {
      ref: typeof record.ref === 'string' ? record.ref : '',
      at: typeof record.at === 'number' ? record.at : 0,
      submittedAt: typeof record.submittedAt === 'number' ? record.submittedAt : undefined,
      ...(typeof rerunOf === 'string' ? { rerunOf } : {}),
      ...(typeof sequenceId === 'string' ? { sequenceId } : {}),
    };
  } catch {
    return { ref: '', at: 0, submittedAt: undefined };
  }
}
