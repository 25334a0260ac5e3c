/**
 * What a node reports on a parallel TaskInstance it works for: progress (at most every
 * `PROGRESS_MS` per instance, the newest counts win) and prefixed log lines, both on the
 * TaskInstance's own job in `tasks`. A node that works on many batches of one instance sends one
 * progress update per period, not one per batch.
 */
import type { Queue } from 'bullmq';

import type { TaskProgress } from '../../../queues/progress.js';
import type { ParallelCounts } from '../../redis/parallel-commands.js';

const PROGRESS_MS = 250;
/** Log lines one node keeps per instance; the TaskInstance's own log is trimmed by BullMQ as well. */
const MAX_LINES_PER_INSTANCE = 1000;
const KEEP_LOGS = 2000;

export function parallelProgress(counts: Omit<ParallelCounts, 'enqueued' | 'abort'>): TaskProgress {
  const ended = counts.done + counts.failed;
  const total = Math.max(counts.total, ended);
  const exact = total === 0 ? (counts.splitDone ? 100 : 0) : Math.floor((ended / total) * 100);
  return {
    // While split runs the total still grows: never claim 100 before it has ended.
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
  private readonly pending = new Map<string, TaskProgress>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly lines = new Map<string, number>();

  constructor(private readonly tasksQueue: Queue) {}

  progress(instanceId: string, progress: TaskProgress): void {
    this.pending.set(instanceId, progress);
    if (!this.timers.has(instanceId)) {
      this.flush(instanceId);
      this.timers.set(
        instanceId,
        setTimeout(() => {
          this.timers.delete(instanceId);
          if (this.pending.has(instanceId)) {
            this.flush(instanceId);
          }
        }, PROGRESS_MS).unref(),
      );
    }
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

  private flush(instanceId: string): void {
    const progress = this.pending.get(instanceId);
    this.pending.delete(instanceId);
    if (progress !== undefined) {
      void this.tasksQueue.updateJobProgress(instanceId, progress).catch(() => undefined);
    }
  }
}
