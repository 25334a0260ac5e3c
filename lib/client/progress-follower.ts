/**
 * Follows one TaskInstance's progress on the client's shared QueueEvents, for a {@link TaskRun}
 * with `progress` listeners. One QueueEvents serves every run of a client: each follower adds
 * its own listeners, filters the events by job id, and removes its listeners as soon as the
 * TaskInstance ends or the run stops listening (a shared emitter would otherwise collect them).
 */
import { Job, type QueueEvents } from 'bullmq';

import type { TaskProgress } from '../../queues/progress.js';
import { reportedProgress, toTaskProgress } from './progress.js';
import type { TaskRunContext } from './task-run-context.js';

type JobEvent = { jobId: string };

export class ProgressFollower {
  private events: QueueEvents | undefined;
  private stopped = false;
  /** A live event arrived: the snapshot read at the start may be older than it, so it is not sent. */
  private liveSeen = false;

  private readonly onProgress = ({ jobId, data }: { jobId: string; data: unknown }): void => {
    if (jobId === this.id && !this.stopped) {
      this.liveSeen = true;
      const progress = toTaskProgress(data);
      if (progress !== undefined) {
        this.deliver(progress);
      }
    }
  };

  private readonly onEnd = ({ jobId }: JobEvent): void => {
    if (jobId === this.id) {
      this.stop();
    }
  };

  constructor(
    private readonly context: TaskRunContext,
    private readonly id: string,
    private readonly deliver: (progress: TaskProgress) => void,
  ) {}

  /**
   * Listens, then reads the progress already reported (sent unless a live event came first) and
   * whether the TaskInstance has already ended (then it stops at once: no event would say so).
   */
  async start(): Promise<void> {
    const events = await this.context.events();
    if (this.stopped) {
      return;
    }
    this.events = events;
    events.on('progress', this.onProgress);
    for (const name of ['completed', 'failed', 'removed'] as const) {
      events.on(name, this.onEnd);
    }
    const job = await Job.fromId(this.context.tasksQueue, this.id);
    const state = await job?.getState();
    if (this.stopped) {
      return;
    }
    const snapshot = reportedProgress(job?.progress);
    if (snapshot !== undefined && !this.liveSeen) {
      this.deliver(snapshot);
    }
    if (job === undefined || state === 'completed' || state === 'failed') {
      this.stop();
    }
  }

  /** Removes every listener it added. Idempotent. */
  stop(): void {
    this.stopped = true;
    const events = this.events;
    this.events = undefined;
    if (events !== undefined) {
      events.off('progress', this.onProgress);
      for (const name of ['completed', 'failed', 'removed'] as const) {
        events.off(name, this.onEnd);
      }
    }
  }

  get active(): boolean {
    return !this.stopped;
  }
}
