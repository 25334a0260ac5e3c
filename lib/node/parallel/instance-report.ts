/**
 * What a node reports on a parallel TaskInstance it works for: progress and prefixed log lines,
 * both on the TaskInstance's own job in `tasks`. A node that works on many batches of one instance
 * sends at most one progress update per `PROGRESS_MS`: the first at once, with the counts it has;
 * the last at the end of the period, with the counts read again then, and only while the
 * TaskInstance has not ended. Counts held back for a period could be older than the coordinator's
 * final progress, and would overwrite it.
 */
import type { Queue } from 'bullmq';

import type { TaskProgress } from '../../../queues/progress.js';
import type { Redis } from 'ioredis';

import type { Keyspace } from '../../redis/keys.js';
import { type ParallelCounts, readCounts } from '../../redis/parallel-commands.js';

const PROGRESS_MS = 250;
/** Log lines one node keeps per instance; the TaskInstance's own log is trimmed by BullMQ as well. */
const MAX_LINES_PER_INSTANCE = 1000;
const KEEP_LOGS = 2000;

export function parallelProgress(counts: Omit<ParallelCounts, 'enqueued' | 'abort' | 'ended'>): TaskProgress {
  const ended = counts.done + counts.failed;
  const total = Math.max(counts.total, ended);
  const exact = total === 0 ? (counts.splitDone ? 100 : 0) : Math.floor((ended / total) * 100);
  return {
    // While split runs the total still grows: never claim 100 before it has ended. The percent can
    // go back meanwhile; holding it up would take a high-water mark in Redis, shared by every node
    // that reports, for what the counts beside it already say.
    percent: counts.splitDone ? exact : Math.min(exact, 99),
    workunits: {
      total,
      done: counts.done,
      failed: counts.failed,
      running: Math.min(counts.running, total - ended),
    },
    splitDone: counts.splitDone,
  };
}

export class InstanceReporter {
  /** Instances with counts newer than the last write, to be read again and written at the period's end. */
  private readonly pending = new Set<string>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lines = new Map<string, number>();

  constructor(
    private readonly tasksQueue: Queue,
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  progress(instanceId: string, progress: TaskProgress): void {
    if (this.timers.has(instanceId)) {
      this.pending.add(instanceId);
      return;
    }
    void this.tasksQueue.updateJobProgress(instanceId, progress).catch(() => undefined);
    this.timers.set(
      instanceId,
      setTimeout(() => {
        this.timers.delete(instanceId);
        if (this.pending.delete(instanceId)) {
          void this.flushFresh(instanceId);
        }
      }, PROGRESS_MS).unref(),
    );
  }

  /** Writes `progress` now (the final counts, which must not wait for the period). */
  async progressNow(instanceId: string, progress: TaskProgress): Promise<void> {
    this.pending.delete(instanceId);
    await this.tasksQueue.updateJobProgress(instanceId, progress).catch(() => undefined);
  }

  log(instanceId: string, line: string): void {
    const count = (this.lines.get(instanceId) ?? 0) + 1;
    this.lines.set(instanceId, count);
    if (count <= MAX_LINES_PER_INSTANCE) {
      void this.tasksQueue.addJobLog(instanceId, line, KEEP_LOGS).catch(() => undefined);
    }
  }

  forget(instanceId: string): void {
    clearTimeout(this.timers.get(instanceId));
    this.timers.delete(instanceId);
    this.pending.delete(instanceId);
    this.lines.delete(instanceId);
  }

  close(): void {
    for (const timer of this.timers.values()) {
      clearTimeout(timer);
    }
    this.timers.clear();
  }

  private async flushFresh(instanceId: string): Promise<void> {
    try {
      const counts = await readCounts(this.redis, this.keys, instanceId);
      if (!counts.ended) {
        await this.tasksQueue.updateJobProgress(instanceId, parallelProgress(counts));
      }
    } catch {
      // Progress is best effort; the coordinator writes the final one.
    }
  }
}
