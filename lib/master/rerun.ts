/**
 * A TaskInstance retried after it ended (Bull Board's retry of a completed or failed job) runs
 * again, from scratch. BullMQ's retry moves the job back to `wait` but keeps what its ended run
 * left: the record of its child's value or failure (the master would settle it from that at
 * once), the child itself (a new node job with the same id would not be added), the ending and
 * dispatch in its data, a parallel TaskInstance's state, a sequence's step. And its package
 * reference was released when it ended.
 *
 * A retry is told from a step of a run by BullMQ's attempt count: `attemptsMade` grows by one
 * each time the TaskInstance ends (a TaskInstance has one attempt, so only at its end; parking
 * and delays do not count) and a retry keeps it, while `data.run` records its value when the
 * current run started. Past it, the ended run's leftovers go (children in one checked step,
 * `drop-run-2.lua`), the reference is taken again, and the data is reset; `data.run` is written
 * last, so a master that crashes midway leaves a TaskInstance the next one resets again.
 */
import { UnrecoverableError } from 'bullmq';
import type { Redis } from 'ioredis';

import { withoutEnding } from '../../queues/task-ending.js';
import { workunitsQueueOf } from '../../queues/workunits.js';
import type { Logger } from '../core/logger.js';
import type { PackageStore } from '../packages/store.js';
import { readCancelRecord } from '../redis/cancel-record.js';
import type { Keyspace } from '../redis/keys.js';
import { resetParallel } from '../redis/parallel-commands.js';
import { dropRun } from '../redis/rerun-commands.js';
import { clearTakenBack } from '../redis/sweep-commands.js';
import { failWith, type TaskInstanceJob } from './settle.js';

export interface RerunDeps {
  redis: Redis;
  keys: Keyspace;
  store: PackageStore;
  logger: Logger;
}

/** Whether the TaskInstance ended since its current run started: a retry that must run afresh. */
export function isRetried(job: TaskInstanceJob): boolean {
  return job.attemptsMade > (job.data.run ?? 0);
}

/**
 * Resets a retried TaskInstance for a new run (see the module comment). Throws (failing it again)
 * when its old run is still being stopped, or its package version is gone.
 */
export async function startRerun(deps: RerunDeps, job: TaskInstanceJob): Promise<void> {
  const instanceId = job.id ?? '';
  const parallel = job.data.kind === 'parallel';
  const dropped = await dropRun(deps.redis, deps.keys, {
    tasksQueue: job.queueName,
    instanceId,
    ...(parallel ? { workunitsQueue: workunitsQueueOf(job.data.secrets) } : {}),
  });
  if (dropped === 'running') {
    throw new Error(
      `Expected the previous run of TaskInstance ${instanceId} to have ended before a retry, but one of its jobs is still running; retry it once that has ended`,
    );
  }
  if (parallel) {
    await resetParallel(deps.redis, deps.keys, instanceId);
  }
  await clearTakenBack(deps.redis, deps.keys, instanceId);
  await forgetOldCancel(deps.redis, deps.keys, job);
  try {
    await deps.store.takeRef(job.data.package.name, job.data.package.sha1, instanceId, { alreadyHeld: true });
  } catch (error) {
    throw await failWith(job, { kind: 'rejected' }, new UnrecoverableError((error as Error).message));
  }
  const {
    dispatch: _dispatch,
    lostNodes: _lost,
    takenBackFrom: _takenBack,
    sequence: _sequence,
    ...rest
  } = withoutEnding(job.data);
  await job.updateProgress(0);
  await job.updateData({ ...rest, run: job.attemptsMade });
  const message = `retried: run ${job.attemptsMade + 1} starts afresh (${dropped} job(s) of the previous run dropped)`;
  await job.log(message);
  deps.logger.info({ instanceId, run: job.attemptsMade + 1, dropped }, 'TaskInstance retried: running it again');
}

/**
 * A cancel asked of the ended run must not cancel the new one at once. A request made after this
 * step picked the TaskInstance up is kept (its `at` is later than `processedOn`); one made in the
 * instant between the pick-up and this read is taken for the old run's.
 */
async function forgetOldCancel(redis: Redis, keys: Keyspace, job: TaskInstanceJob): Promise<void> {
  const request = await readCancelRecord(redis, keys, job.id ?? '');
  // An unreadable request reads as `at` 0: an old one.
  if (request !== undefined && request.at < (job.processedOn ?? Date.now())) {
    await redis.del(keys.cancel(job.id ?? ''));
  }
}
