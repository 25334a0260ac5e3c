/**
 * A TaskInstance's log lines, as `tydra logs ID [--follow]` prints them: the lines its master and
 * node wrote on its job in `tasks` (dispatch, the task's own `ctx.log` and output lines), then,
 * once it has ended, how: `ended: completed`, `ended: cancelled` or `ended: failed: REASON`, read
 * from its state and recorded ending, not written on the hot path of every TaskInstance (or, for
 * one cancelled before it started, whose job is gone, from its cancel request).
 * Following polls the log from the last line read (BullMQ keeps it as a list) until the
 * TaskInstance has ended, then reads once more; each wait is bounded by the poll period.
 *
 * The TaskInstance's log is trimmed to its last lines (a run keeps at most 1000, and a TaskInstance
 * run several times keeps the last 1021 over its runs): when the line before the next index is
 * not the last one read, the reader finds that line again (its last occurrence) and goes on after it.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import { TASKS_QUEUE } from '../../queues/tasks.js';
import { QUIT_MS, settlesWithin } from '../core/bounded-close.js';
import { wasCancelled } from '../client/task-ending.js';
import { readCancelRecord } from '../redis/cancel-record.js';
import { TaskNotFoundError } from '../core/errors.js';
import { BOUNDED_QUEUE_OPTIONS, createBoundedRedis, whenReachable } from '../redis/connection.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { createKeys, type Keyspace } from '../redis/keys.js';

export interface TaskLogsOptions {
  redis: string;
  /** The namespace (`lib/core/namespace.ts`). @defaultValue `tydra` */
  namespace?: string;
  /** How long a call waits for an unreachable Redis. @defaultValue 10 s */
  connectTimeoutMs?: number;
  /** How often a follow looks for new lines. @defaultValue 250 ms */
  pollMs?: number;
}

const FINAL_STATES = new Set(['completed', 'failed']);

export class TaskLogs {
  private readonly redis: Redis;
  private readonly keys: Keyspace;
  private readonly queue: Queue;
  private readonly pollMs: number;

  constructor(options: TaskLogsOptions) {
    this.redis = createBoundedRedis(options.redis, options.connectTimeoutMs ?? 10_000);
    this.redis.on('error', () => undefined);
    this.keys = createKeys(options.namespace);
    this.queue = new Queue(TASKS_QUEUE, {
      connection: this.redis,
      prefix: this.keys.bullPrefix,
      ...BOUNDED_QUEUE_OPTIONS,
    });
    this.queue.on('error', () => undefined);
    this.pollMs = options.pollMs ?? 250;
  }

  /**
   * Yields the TaskInstance's log lines; with `follow`, goes on yielding new ones until it has
   * ended (or was removed, or `signal` aborts). One cancelled before it started has no job, and no
   * lines: only `ended: cancelled`, as `status()` tells it. Throws `TaskNotFoundError` for an
   * unknown id.
   */
  async *lines(id: string, options: { follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    await whenReachable(this.redis);
    if ((await this.queue.getJobState(id)) === 'unknown') {
      if (!(await this.cancelledUnstarted(id))) {
        throw new TaskNotFoundError(id);
      }
      yield 'ended: cancelled';
      return;
    }
    const cursor = { next: 0, last: undefined as string | undefined };
    for (;;) {
      const state = await this.queue.getJobState(id);
      yield* await this.read(id, cursor);
      if (FINAL_STATES.has(state)) {
        const ending = await this.endingLine(id, state);
        if (ending !== undefined) {
          yield ending;
        }
        return;
      }
      if (state === 'unknown') {
        // Removed while followed: cancelled before it started, or taken by retention.
        if (await this.cancelledUnstarted(id)) {
          yield 'ended: cancelled';
        }
        return;
      }
      if (options.follow !== true || options.signal?.aborted === true) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    }
  }

  /** Whether a TaskInstance without a job was cancelled before it started (its cancel request outlives the job). */
  private async cancelledUnstarted(id: string): Promise<boolean> {
    return (await readCancelRecord(this.redis, this.keys, id)) !== undefined;
  }

  /** How an ended TaskInstance ended, or undefined when its job is gone meanwhile. */
  private async endingLine(id: string, state: string): Promise<string | undefined> {
    if (state === 'completed') {
      return 'ended: completed';
    }
    const job = await this.queue.getJob(id);
    if (job === undefined) {
      return undefined;
    }
    return wasCancelled(job) ? 'ended: cancelled' : `ended: failed: ${job.failedReason}`;
  }

  /** The lines after the cursor, moving it (see the module comment for a trimmed log). */
  private async read(id: string, cursor: { next: number; last: string | undefined }): Promise<string[]> {
    const from = Math.max(0, cursor.next - 1);
    const { logs } = await this.queue.getJobLogs(id, from, -1);
    let fresh = cursor.next === 0 ? logs : logs.slice(1);
    if (cursor.next > 0 && logs[0] !== cursor.last) {
      // Trimmed since the last read: find the last line read in what is kept.
      const { logs: all } = await this.queue.getJobLogs(id, 0, -1);
      const at = cursor.last === undefined ? -1 : all.lastIndexOf(cursor.last);
      fresh = all.slice(at + 1);
      cursor.next = all.length;
    } else {
      cursor.next = from + logs.length;
    }
    if (fresh.length > 0) {
      cursor.last = fresh.at(-1);
    }
    return fresh;
  }

  async close(): Promise<void> {
    const graceful = (async () => {
      await this.queue.close();
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    if (!(await settlesWithin(graceful, QUIT_MS))) {
      dropConnections([this.queue, this.redis]);
    }
  }
}
