/**
 * Turns the units a split yields into batch jobs on `workunits`, as they come: buffered for at
 * most `FLUSH_MS` or `MAX_BUFFER` units, cut into batches small enough that every slot of the
 * cluster gets some (and at most `MAX_BATCH` units each). `push` resolves at once unless the
 * buffer is full or too many units wait: then split is held back (its runner gets no more credit)
 * until the cluster has worked them off, so a split of a million units never holds them all in
 * Redis or in memory.
 *
 * A coordinator run again after its node was lost re-runs split from the start; the first
 * `alreadyEnqueued` units it yields were enqueued by the earlier run and are skipped (split must
 * yield the same units in the same order for that, which the README asks of it).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import {
  batchJobId,
  WORKUNIT_BATCH_JOB,
  WORKUNIT_JOB_OPTIONS,
  type WorkunitBatchData,
} from '../../../queues/workunits.js';
import type { Keyspace } from '../../redis/keys.js';
import { markEnqueued, readCounts } from '../../redis/parallel-commands.js';

const FLUSH_MS = 20;
const MAX_BUFFER = 256;
const MAX_BATCH = 32;
/** Units allowed to wait, per slot of the cluster. */
const WAITING_PER_SLOT = 10;
/**
 * Units allowed to wait whatever the cluster's size: two buffers' worth, so the next buffer is
 * enqueued while the last is still being worked off (a small cluster's slots never sit idle
 * waiting for split to be let go again), and still a few kilobytes of Redis.
 */
const MIN_WAITING = 2 * MAX_BUFFER;
const BACKPRESSURE_POLL_MS = 50;

/** Thrown into split when the instance's units were stopped: nothing more is enqueued. */
export class ParallelAbortedError extends Error {
  constructor() {
    super('the workunits of this TaskInstance were stopped');
    this.name = 'ParallelAbortedError';
  }
}

export interface EnqueuerDeps {
  redis: Redis;
  keys: Keyspace;
  queue: Queue<WorkunitBatchData>;
  instanceId: string;
  alreadyEnqueued: number;
  /** Slots of the live nodes now (at least 1). */
  clusterSlots: () => Promise<number>;
  /** True once the instance must stop (cancel, abort): enqueueing stops. */
  stopped: () => boolean;
  /** The TaskInstance's BullMQ priority, given to its batches so they overtake lower-priority ones. */
  priority?: number;
}

export class UnitEnqueuer {
  private buffer: unknown[] = [];
  /** Index of the next unit split yields. */
  private next = 0;
  /** Units enqueued, i.e. the index of the first unit in the buffer. */
  private enqueued: number;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private failure: Error | undefined;
  /** Set once the instance's units were stopped (a unit failed past the policy): split must end. */
  aborted = false;

  constructor(private readonly deps: EnqueuerDeps) {
    this.enqueued = deps.alreadyEnqueued;
  }

  get count(): number {
    return this.next;
  }

  async push(unit: unknown): Promise<void> {
    if (this.failure !== undefined) {
      throw this.failure;
    }
    if (this.aborted) {
      throw new ParallelAbortedError();
    }
    const index = this.next;
    this.next += 1;
    if (index < this.deps.alreadyEnqueued) {
      return;
    }
    this.buffer.push(unit);
    if (this.buffer.length >= MAX_BUFFER) {
      await this.flush();
    } else {
      this.timer ??= setTimeout(() => void this.flush().catch(() => undefined), FLUSH_MS);
    }
  }

  /** Enqueues what is buffered; waits while too many units wait in the cluster. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const units = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(() => this.enqueue(units));
    try {
      await this.flushing;
    } catch (error) {
      this.failure ??= error as Error;
      throw error;
    }
  }

  private async enqueue(units: unknown[]): Promise<void> {
    if (units.length === 0 || this.aborted || this.deps.stopped()) {
      return;
    }
    const slots = await this.deps.clusterSlots();
    const size = Math.min(MAX_BATCH, Math.max(1, Math.ceil(units.length / (2 * slots))));
    const jobs = [];
    for (let offset = 0; offset < units.length; offset += size) {
      const first = this.enqueued + offset;
      jobs.push({
        name: WORKUNIT_BATCH_JOB,
        data: { instanceId: this.deps.instanceId, first, units: units.slice(offset, offset + size), attempt: 1 },
        opts: {
          ...WORKUNIT_JOB_OPTIONS,
          jobId: batchJobId(this.deps.instanceId, first, 1),
          ...(this.deps.priority ? { priority: this.deps.priority } : {}),
        },
      });
    }
    await this.deps.queue.addBulk(jobs);
    this.enqueued += units.length;
    await markEnqueued(
      this.deps.redis,
      this.deps.keys,
      this.deps.instanceId,
      this.enqueued,
      jobs.map((job) => job.opts.jobId),
    );
    await this.holdBack(slots);
  }

  private async holdBack(slots: number): Promise<void> {
    const bound = Math.max(MIN_WAITING, WAITING_PER_SLOT * slots);
    for (;;) {
      const counts = await readCounts(this.deps.redis, this.deps.keys, this.deps.instanceId);
      this.aborted ||= counts.abort !== undefined;
      if (this.enqueued - counts.done - counts.failed <= bound || this.aborted || this.deps.stopped()) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, BACKPRESSURE_POLL_MS));
    }
  }
}
