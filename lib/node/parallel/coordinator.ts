/**
 * The node job of a parallel TaskInstance (Pydra's main worker): it runs split, parks while the
 * cluster works the units off, and runs reduce. The master sees one node job, as for a simple
 * task, and settles the TaskInstance with its value or error. Each activation starts from the
 * state in Redis (`parallel-commands.ts`), so the job can move to another node at any point:
 *
 *  1. split (not in a slot): its units go to `workunits` in batches as it yields them
 *     (`unit-enqueuer.ts`); then `splitDone`.
 *  2. park: the job moves itself to delayed; the batch that records the last unit (or a failure
 *     past the policy) promotes it. It re-checks after parking (the last unit may have ended just
 *     before) and wakes itself every `PARK_MS` as a safety net.
 *  3. reduce (in a slot): the results, streamed in pages in split order, go to reduce; its value
 *     is the TaskInstance's result, and is stored with the ended state: a coordinator that runs
 *     again after the end (lost lock, node killed before the job completed) answers with it.
 */
import { DelayedError, type Job } from 'bullmq';

import type { NodeJobData } from '../../../queues/node.js';
import { needsSecretKey } from '../../../queues/workunits.js';
import { runReduce, runSplit } from '../../../sandbox/launcher/phases/index.js';
import {
  InfrastructureError,
  LimitExceededError,
  NodeShutdownError,
  ParallelResultMissingError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
} from '../../core/errors.js';
import type { CompiledTaskLimits } from '../../core/limits.js';
import { stopParallel } from '../../cluster/parallel-stop.js';
import {
  endParallel,
  initParallel,
  markSplitDone,
  type ParallelAbort,
  type ParallelCounts,
  type ParallelMeta,
  readCounts,
  readFailure,
  readFailures,
  readReducedValue,
  readResultsPage,
} from '../../redis/parallel-commands.js';
import { type PhaseEntry, parallelEntries, type ParallelTaskSpec } from '../../packages/manifest.js';
import { checkTaskOutput } from '../../packages/task-schemas.js';
import type { RedisMirror } from '../redis-mirror.js';
import type { ExecutionEnv } from '../execution-env.js';
import { taskNetwork } from '../network/task-network.js';
import { openTaskSecrets } from '../task-secrets.js';
import { parallelProgress } from './instance-report.js';
import { UnitEnqueuer } from './unit-enqueuer.js';

const PARK_MS = 5000;
const RESULTS_PAGE = 500;

export interface CoordinatorRun {
  env: ExecutionEnv;
  job: Job<NodeJobData>;
  token: string | undefined;
  data: NodeJobData;
  task: ParallelTaskSpec;
  packageDir: string;
  limits: CompiledTaskLimits;
  mirror: RedisMirror;
  signal: AbortSignal;
  /** The secret values of split and reduce, opened by `coordinate`. */
  secrets?: Record<string, string>;
}

export async function coordinate(run: CoordinatorRun): Promise<unknown> {
  const { env, data, job } = run;
  const id = data.instanceId;
  const meta: ParallelMeta = {
    ref: data.ref,
    package: data.package,
    task: data.task,
    ...(data.limits !== undefined ? { limits: data.limits } : {}),
    ...(data.retryOnLimit ? { retryOnLimit: true } : {}),
    attempts: data.attempts ?? 1,
    ...(data.env !== undefined ? { env: data.env } : {}),
    ...(data.secrets !== undefined ? { secrets: data.secrets } : {}),
    owner: { queue: job.queueName, jobId: job.id ?? id },
  };
  // Opened before anything runs: a node without the key refuses here, and from now on every
  // line split and reduce print is masked.
  const secrets = await openTaskSecrets(
    env.redis,
    env.keys,
    env.options.secretKey,
    env.nodeId,
    run.task.secrets,
    data.secrets,
  );
  run.mirror.mask(Object.values(secrets));
  run.secrets = secrets;
  let counts = await initParallel(env.redis, env.keys, id, meta, data.maxFailedWorkunits ?? 0);
  if (counts.ended) {
    // Run again after the end (its node job's lock expired, or its node died before the job
    // completed): the results are deleted, so reduce must not run again; answer as the first run did.
    const reduced = await readReducedValue(env.redis, env.keys, id);
    if (reduced !== undefined) {
      run.mirror.log('[reduce] ran already: answering with its stored value');
      return reduced.value;
    }
  }
  if (!counts.splitDone) {
    run.mirror.log(`coordinating ${data.ref} on node ${env.nodeId}${env.bwrap ? '' : ' (UNSANDBOXED)'}`);
  }
  try {
    if (counts.abort === undefined && !counts.splitDone) {
      counts = await splitPhase(run, counts.enqueued);
    }
    if (counts.abort !== undefined) {
      throw await abortError(run, counts.abort);
    }
    if (!allEnded(counts)) {
      await park(run);
    }
    return await reducePhase(run, counts);
  } catch (error) {
    run.mirror.maskError(error);
    // Parked, or handed to another node (drain timeout, sandbox set-up failure): the units go on.
    if (!(
      error instanceof DelayedError ||
      error instanceof NodeShutdownError ||
      error instanceof InfrastructureError
    )) {
      await endUnits(env, id, abortOf(error), data.secrets);
    }
    throw error;
  }
}

/** Stops what is left of the instance's units and ends its state (the TaskInstance is ending). */
export async function endUnits(
  env: Pick<ExecutionEnv, 'redis' | 'keys' | 'workunitsQueueOf' | 'reporter'>,
  id: string,
  abort: ParallelAbort,
  /** The instance's secret mapping: which workunits queue its batches wait in. */
  secrets: Readonly<Record<string, string>> | undefined,
): Promise<void> {
  await stopParallel(env.redis, env.keys, env.workunitsQueueOf(secrets), id, abort).catch(() => undefined);
  await endParallel(env.redis, env.keys, id).catch(() => undefined);
  env.reporter.forget(id);
}

function allEnded(counts: Omit<ParallelCounts, 'enqueued'>): boolean {
  return counts.splitDone && counts.done + counts.failed >= counts.total;
}

function abortOf(error: unknown): ParallelAbort {
  return error instanceof TaskCancelledError
    ? { kind: 'cancelled' }
    : { kind: 'failed', message: error instanceof Error ? error.message : String(error) };
}

async function splitPhase(run: CoordinatorRun, alreadyEnqueued: number): Promise<ParallelCounts> {
  const { env, data, mirror, signal } = run;
  const id = data.instanceId;
  if (alreadyEnqueued > 0) {
    mirror.log(`[split] running again after a lost node: its first ${alreadyEnqueued} units were enqueued already`);
  }
  const enqueuer = new UnitEnqueuer({
    redis: env.redis,
    keys: env.keys,
    queue: env.workunitsQueueOf(data.secrets),
    instanceId: id,
    alreadyEnqueued,
    // A secret instance's units go only to nodes holding a key: size its batches for their slots.
    clusterSlots: () => env.clusterSlots(needsSecretKey(data.secrets)),
    stopped: () => signal.aborted,
    // The priority the master gave the node job (0 or absent: none).
    ...(run.job.opts.priority ? { priority: run.job.opts.priority } : {}),
  });
  let lastReport = 0;
  try {
    await runSplit({
      ...phaseOptions(run, parallelEntries(run.task).split, 'split'),
      input: data.input,
      onLog: (line) => mirror.log(`[split] ${line}`),
      onUnit: async (unit) => {
        await enqueuer.push(unit);
        if (enqueuer.count - lastReport >= 100) {
          lastReport = enqueuer.count;
          env.reporter.progress(
            id,
            parallelProgress({ ...(await readCounts(env.redis, env.keys, id)), splitDone: false }),
          );
        }
      },
    });
    await enqueuer.flush();
  } catch (error) {
    // A unit failed past the policy while split ran: that failure is the TaskInstance's.
    const counts = await readCounts(env.redis, env.keys, id);
    if (counts.abort !== undefined && !signal.aborted) {
      return counts;
    }
    throw phaseError('split', error, id);
  }
  const counts = await markSplitDone(env.redis, env.keys, id, enqueuer.count);
  mirror.log(`[split] ended: ${enqueuer.count} workunits`);
  env.reporter.progress(id, parallelProgress(counts));
  return counts;
}

/** BullMQ's answer to a move by a run whose lock is gone (`Missing lock`, `Lock mismatch`). */
function lostLock(error: unknown): boolean {
  return error instanceof Error && /^(Missing lock|Lock mismatch) for job /.test(error.message);
}

/** Moves the job to delayed until the last unit wakes it; throws `DelayedError`. */
async function park(run: CoordinatorRun): Promise<never> {
  const { job, token, env, data } = run;
  if (token === undefined) {
    throw new TaskFailedError('a parallel TaskInstance was run without a lock token', data.instanceId);
  }
  await run.mirror.finish();
  try {
    await job.moveToDelayed(Date.now() + PARK_MS, token);
  } catch (error) {
    // Our lock expired (a Redis restart, a stalled loop): the job is another run's now, or will be
    // once the stalled check moves it. The units go on; ending them here would fail the instance.
    if (lostLock(error)) {
      throw new DelayedError();
    }
    throw error;
  }
  // The last unit may have ended between our count and the move, and found nothing to promote.
  const counts = await readCounts(env.redis, env.keys, data.instanceId);
  if (allEnded(counts) || counts.abort !== undefined || (await env.cancels.requested(data.instanceId))) {
    await job.promote().catch(() => undefined);
  }
  throw new DelayedError();
}

async function reducePhase(run: CoordinatorRun, counted: ParallelCounts): Promise<unknown> {
  const { env, data, mirror } = run;
  const id = data.instanceId;
  const counts = counted;
  const failures = counts.failed > 0 ? await readFailures(env.redis, env.keys, id) : [];
  mirror.log(`[reduce] ${counts.done} results${failures.length > 0 ? `, ${failures.length} failed workunits` : ''}`);
  const value = await env.gate
    .with(() =>
      runReduce({
        ...phaseOptions(run, parallelEntries(run.task).reduce, 'reduce'),
        input: data.input,
        results: resultsOf(run, counts.total),
        failures: failures.map(({ index, message }) => ({ index, message })),
        onLog: (line) => mirror.log(`[reduce] ${line}`),
      }),
    )
    .catch((error: unknown) => {
      throw phaseError('reduce', error, id);
    });
  checkTaskOutput(data.task, run.task, value, id);
  // A secret is never stored in clear, not even in a value reduce chose to return.
  const masked = run.mirror.maskValue(value);
  // Ended first: a node's progress update held back for a period is then dropped, not written
  // over the final one. The value is kept with the ended state for a coordinator run again.
  await endParallel(env.redis, env.keys, id, { value: masked });
  await env.reporter.progressNow(id, parallelProgress({ ...counts, running: 0 }));
  env.reporter.forget(id);
  return masked;
}

/** The results in split order, read a page at a time: never all of them in memory. */
async function* resultsOf(run: CoordinatorRun, total: number): AsyncGenerator<unknown> {
  for (let from = 0; from < total; from += RESULTS_PAGE) {
    const page = await readResultsPage(
      run.env.redis,
      run.env.keys,
      run.data.instanceId,
      from,
      Math.min(RESULTS_PAGE, total - from),
    );
    for (const [offset, raw] of page.entries()) {
      // A unit that failed for good is recorded as `null`; no field at all is a lost result.
      if (raw === null) {
        throw new ParallelResultMissingError(run.data.instanceId, from + offset);
      }
      yield JSON.parse(raw) as unknown;
    }
  }
}

/**
 * A failure in split or reduce says which phase, and keeps its kind: a broken limit stays a
 * `LimitExceededError`, `ctx.fail` a `TaskUnrecoverableError` (the TaskInstance's ending, and so
 * whether it is retried, is read from the class). Timeouts and cancels stay as they are.
 */
function phaseError(phase: 'split' | 'reduce', error: unknown, id: string): unknown {
  if (!(error instanceof TaskFailedError) || error instanceof TaskTimeoutError || error instanceof TaskCancelledError) {
    return error;
  }
  const message = `${phase} failed: ${error.message}`;
  if (error instanceof LimitExceededError) {
    return new LimitExceededError(message, id, error.limit, error.value);
  }
  const Failure = error instanceof TaskUnrecoverableError ? TaskUnrecoverableError : TaskFailedError;
  return new Failure(message, id, error.remoteStack);
}

/** The error the TaskInstance fails with when its units were stopped. */
async function abortError(run: CoordinatorRun, abort: ParallelAbort): Promise<Error> {
  const id = run.data.instanceId;
  if (abort.kind === 'cancelled') {
    return new TaskCancelledError(id);
  }
  if (abort.kind === 'failed') {
    return new TaskFailedError(abort.message, id);
  }
  const failure = await readFailure(run.env.redis, run.env.keys, id, abort.index);
  const message = `workunit ${abort.index} failed: ${failure?.message ?? 'no message recorded'}`;
  return new TaskFailedError(message, id, failure?.stack ? `${message}\n${failure.stack}` : undefined);
}

function phaseOptions(run: CoordinatorRun, entry: PhaseEntry, phase: 'split' | 'reduce') {
  const { env } = run;
  // Judged by this node's own policy: split and reduce may each run on another node.
  const network = taskNetwork(run.task.network, {
    ...{ nodeId: env.nodeId, instanceId: run.data.instanceId, policy: env.options.allowConnect },
    ...{ logger: env.logger, metrics: env.metrics, log: (line: string) => run.mirror.log(`[${phase}] ${line}`) },
  });
  return {
    entry,
    packageDir: run.packageDir,
    instanceId: run.data.instanceId,
    attempt: run.job.attemptsMade + 1,
    limits: run.limits,
    signal: run.signal,
    ...{ bwrap: env.bwrap, prlimit: env.prlimit, cgroups: env.cgroups },
    ...{ runtimeDir: env.runtimeDir, sandboxUser: env.options.sandboxUser },
    ...(run.data.env !== undefined ? { env: run.data.env } : {}),
    ...(run.secrets !== undefined && Object.keys(run.secrets).length > 0 ? { secrets: run.secrets } : {}),
    ...(network !== undefined ? { network } : {}),
  };
}
