/**
 * The processor of a node's `workunits` Worker: runs one batch of a parallel TaskInstance's
 * units, one after the other, in that instance's work sandboxes (see `worker-pool.ts`), inside
 * one of the node's slots. Each unit ends as a result, a failure for good (its attempts used, or
 * a limit broken), or a retry (added back as a batch of its own with the next attempt). The
 * batch's units are recorded in one script call; whoever records the last unit of the instance,
 * or the failure that breaks its policy, wakes the instance's coordinator.
 */
import { randomUUID } from 'node:crypto';

import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import {
  batchJobId,
  WORKUNIT_BATCH_JOB,
  WORKUNIT_JOB_OPTIONS,
  type WorkunitBatchData,
  workunitBatchSchema,
} from '../../../queues/workunits.js';
import type { WorkSandbox } from '../../../sandbox/launcher/phases/index.js';
import {
  InvalidJobDataError,
  LimitExceededError,
  NodeShutdownError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Keyspace } from '../../redis/keys.js';
import {
  addBatches,
  type ParallelMeta,
  recordUnits,
  startBatch,
  type UnitRecord,
} from '../../redis/parallel-commands.js';
import type { NodeMetrics } from '../node-metrics.js';
import type { SlotGate } from '../slot-gate.js';
import { type InstanceReporter, parallelProgress } from './instance-report.js';
import type { InstanceWorkers, WorkerPool } from './worker-pool.js';

export interface BatchDeps {
  redis: Redis;
  keys: Keyspace;
  pool: WorkerPool;
  gate: SlotGate;
  reporter: InstanceReporter;
  /** See `ExecutionEnv.workunitsQueueOf`. */
  workunitsQueueOf: (secrets: Readonly<Record<string, string>> | undefined) => Queue<WorkunitBatchData>;
  /** Queues of coordinators' node queues, to wake them. */
  queueNamed: (name: string) => Queue;
  logger: Logger;
  metrics: NodeMetrics;
}

/** What running a batch's units gave: records to write, and units to try again. */
interface BatchRun {
  records: UnitRecord[];
  retries: Array<{ index: number; value: unknown }>;
  /** Units not run because this node is shutting down: they go back as a batch of their own. */
  handBack?: { first: number; units: unknown[] };
}

export async function processBatch(deps: BatchDeps, job: Job<WorkunitBatchData>): Promise<void> {
  const parsed = workunitBatchSchema.safeParse(job.data);
  if (!parsed.success) {
    throw new InvalidJobDataError(
      `Expected workunit batch data {instanceId, first, units, attempt}, got invalid data: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  }
  const data = parsed.data;
  const id = data.instanceId;
  const started = await startBatch(deps.redis, deps.keys, id, data.units.length);
  if (started === undefined) {
    return; // the instance ended long ago
  }
  let run: BatchRun = { records: [], retries: [] };
  if (started.abort === undefined && !started.cancelled) {
    run = await deps.gate.with(() => runUnits(deps, job, data, started.meta));
  }
  await requeue(deps, data, run, { secrets: started.meta.secrets, priority: job.opts.priority });
  const counts = await recordUnits(deps.redis, deps.keys, id, job.id ?? '', data.units.length, run.records);
  if (counts === undefined) {
    return;
  }
  deps.reporter.progress(id, parallelProgress(counts));
  const allEnded = counts.splitDone && counts.done + counts.failed >= counts.total;
  if (allEnded || counts.abort !== undefined) {
    await wakeCoordinator(deps, started.meta);
    // No unit is left to run (or none may run): every node closes the instance's sandboxes now.
    await deps.redis.publish(deps.keys.parallelAbortChannel, id);
  }
}

async function runUnits(
  deps: BatchDeps,
  job: Job<WorkunitBatchData>,
  data: WorkunitBatchData,
  meta: ParallelMeta,
): Promise<BatchRun> {
  const run: BatchRun = { records: [], retries: [] };
  let workers: InstanceWorkers;
  try {
    workers = await deps.pool.instance(data.instanceId, meta);
  } catch (error) {
    // The package or task cannot be run here: every unit of the batch fails for good.
    const message = (error as Error).message;
    data.units.forEach((_unit, offset) => run.records.push({ index: data.first + offset, ok: false, message }));
    data.units.forEach(() => deps.metrics.workunit(meta, 'failed'));
    return run;
  }
  // A batch run again after its node died counts as the units' next try.
  const attempt = data.attempt + (job.stalledCounter ?? 0);
  for (const [offset, value] of data.units.entries()) {
    const index = data.first + offset;
    const ended = workers.stopped ? 'stopped' : await runUnit(deps, workers, { index, attempt, value }, meta);
    if (ended === 'stopped') {
      // Cancelled or aborted: the other units are not run, and not recorded. The node shutting
      // down is no reason to drop them: they go back for another node.
      if (workers.signal.reason instanceof NodeShutdownError) {
        run.handBack = { first: index, units: data.units.slice(offset) };
      }
      break;
    }
    if (ended === 'retry') {
      run.retries.push({ index, value });
    } else {
      run.records.push(ended);
    }
    deps.metrics.workunit(meta, ended === 'retry' ? 'retried' : ended.ok ? 'ok' : 'failed');
  }
  return run;
}

async function runUnit(
  deps: BatchDeps,
  workers: InstanceWorkers,
  unit: { index: number; attempt: number; value: unknown },
  meta: ParallelMeta,
): Promise<UnitRecord | 'retry' | 'stopped'> {
  let sandbox: WorkSandbox | undefined;
  try {
    sandbox = await workers.take();
    const value = await sandbox.run(unit, (line) =>
      deps.reporter.log(workers.instanceId, workers.mask(`[workunit ${unit.index}] ${line}`)),
    );
    // Masked in the JSON text: a secret never reaches Redis in clear, even in a unit's result.
    return { index: unit.index, ok: true, value: JSON.stringify(workers.maskValue(value) ?? null) };
  } catch (error) {
    if (error instanceof TaskCancelledError || error instanceof NodeShutdownError || workers.stopped) {
      return 'stopped';
    }
    const failure = error instanceof Error ? error : new Error(String(error));
    const limitBroken = failure instanceof TaskTimeoutError || failure instanceof LimitExceededError;
    const final =
      unit.attempt >= meta.attempts ||
      (limitBroken && meta.retryOnLimit !== true) ||
      failure instanceof TaskUnrecoverableError;
    const message = workers.mask(failure.message);
    deps.reporter.log(
      workers.instanceId,
      `[workunit ${unit.index}] attempt ${unit.attempt} failed${final ? '' : ', will retry'}: ${message}`,
    );
    if (!final) {
      return 'retry';
    }
    const stack = failure instanceof TaskFailedError ? (failure.remoteStack ?? failure.stack) : failure.stack;
    return { index: unit.index, ok: false, message, ...(stack ? { stack: workers.mask(stack) } : {}) };
  } finally {
    if (sandbox !== undefined) {
      workers.give(sandbox);
    }
  }
}

/**
 * Adds each unit to try again as a batch of its own, with the next attempt, and what a shutdown
 * handed back, to the instance's workunits queue; both keep the batch's priority (its TaskInstance's).
 */
async function requeue(
  deps: BatchDeps,
  data: WorkunitBatchData,
  run: BatchRun,
  { secrets, priority }: { secrets: Readonly<Record<string, string>> | undefined; priority: number | undefined },
): Promise<void> {
  const id = data.instanceId;
  const batch = (first: number, units: unknown[], attempt: number, handBack?: string) => ({
    name: WORKUNIT_BATCH_JOB,
    data: { instanceId: id, first, units, attempt },
    opts: {
      ...WORKUNIT_JOB_OPTIONS,
      jobId: batchJobId(id, first, attempt, handBack),
      ...(priority ? { priority } : {}),
    },
  });
  const jobs = run.retries.map(({ index, value }) => batch(index, [value], data.attempt + 1));
  if (run.handBack !== undefined) {
    jobs.push(batch(run.handBack.first, run.handBack.units, data.attempt, randomUUID().slice(0, 8)));
  }
  if (jobs.length === 0) {
    return;
  }
  await deps.workunitsQueueOf(secrets).addBulk(jobs);
  await addBatches(
    deps.redis,
    deps.keys,
    data.instanceId,
    jobs.map((job) => job.opts.jobId),
  );
}

/** Moves the coordinator's node job from delayed to waiting; a job not delayed (yet) is left alone. */
export async function wakeCoordinator(deps: Pick<BatchDeps, 'queueNamed'>, meta: ParallelMeta): Promise<void> {
  const job = await Job.fromId(deps.queueNamed(meta.owner.queue), meta.owner.jobId).catch(() => undefined);
  // Not delayed: it is running (it checks the counts again after it parks itself) or gone.
  await job?.promote().catch(() => undefined);
}
