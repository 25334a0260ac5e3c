/**
 * One node job, from its data to its ending: sync the pinned package into the cache, resolve
 * the limits, run the task in a sandbox (or a task process without one, in development), and map
 * how it ended to what BullMQ should do (complete, retry, park for re-routing, fail for good)
 * and to the `TaskEnding` recorded on the job (see `queues/task-ending.ts`).
 */

import { DelayedError, type Job, UnrecoverableError } from 'bullmq';

import { type NodeJobData, nodeJobSchema } from '../../queues/node.js';
import { recordedEnding, type TaskEnding, withoutEnding } from '../../queues/task-ending.js';
import {
  InfrastructureError,
  InvalidJobDataError,
  LimitExceededError,
  NodeShutdownError,
  PackageRejectedError,
  SecretUnavailableError,
  TaskCancelledError,
  TaskFailedError,
  TaskTimeoutError,
  TaskUnrecoverableError,
  UnknownTaskError,
} from '../core/errors.js';
import { type CompiledTaskLimits, describeLimit, resolveLimits, type TaskLimits } from '../core/limits.js';
import { type SimpleTaskSpec, taskKind } from '../packages/manifest.js';
import { checkTaskOutput } from '../packages/task-schemas.js';
import { coordinate, endUnits } from './parallel/coordinator.js';
import type { ExecutionEnv } from './execution-env.js';
import { cachedManifest } from './manifest-cache.js';
import { RedisMirror } from './redis-mirror.js';
import { taskNetwork } from './network/task-network.js';
import { openTaskSecrets } from './task-secrets.js';
import { runSimpleTask } from './warm-run.js';

/** Sandbox set-up failures a TaskInstance may meet on one node before it fails for good. */
const MAX_INFRA_FAILURES = 3;

/**
 * The processor of the node's BullMQ Worker (job data is parsed here, invalid data included).
 * A failure is recorded as the job's ending before BullMQ fails the job: BullMQ would keep only
 * its message, which the task chooses.
 */
export type { ExecutionEnv } from './execution-env.js';

export async function executeNodeJob(env: ExecutionEnv, job: Job<NodeJobData>, token?: string): Promise<unknown> {
  if (recordedEnding(job.data) !== undefined) {
    // Left by an earlier attempt: it must not describe this one if this one ends unrecorded.
    await job.updateData(withoutEnding(job.data));
  }
  const run = env.cancels.track(job.id ?? '');
  const { signal, release } = run;
  env.metrics.queueWait(job);
  // Moved to delayed (an infrastructure error, retried): BullMQ records that without an event.
  let recordedByEvent = true;
  try {
    return await execute(env, job, token, run);
  } catch (error) {
    if (error instanceof DelayedError) {
      recordedByEvent = false;
      throw error;
    }
    const ending = endingOf(error, signal);
    if (typeof job.data === 'object' && job.data !== null) {
      await job.updateData({ ...job.data, ending });
    }
    throw toBullMQError(error, ending, job.data);
  } finally {
    release();
    env.handoffs.processed(job.id ?? '', recordedByEvent);
  }
}

async function execute(
  env: ExecutionEnv,
  job: Job<NodeJobData>,
  token: string | undefined,
  { signal, abort }: { signal: AbortSignal; abort: (reason: Error) => void },
): Promise<unknown> {
  const parsed = nodeJobSchema.safeParse(job.data);
  if (!parsed.success) {
    throw new InvalidJobDataError(
      `Expected node job data {instanceId, package, task, input}, got invalid data: ${parsed.error.issues[0]?.message ?? ''}`,
    );
  }
  const data = parsed.data;
  const mirror = new RedisMirror(job, env.tasksQueue, data.instanceId);
  // A cancel may have been asked before this job reached us: its message is long gone.
  if (data.kind === 'parallel' && (await env.cancels.requested(data.instanceId))) {
    await endUnits(env, data.instanceId, { kind: 'cancelled' }, data.secrets);
    throw new TaskCancelledError(data.instanceId);
  }
  // A simple task's check goes alongside the lease and its sandbox's boot: its code starts only
  // once the answer came (`startAfter`), and a cancel found aborts the run.
  const cancelChecked = data.kind === 'parallel' ? Promise.resolve() : checkCancelKey(env, data.instanceId, abort);
  try {
    // The lease keeps the version from eviction while this TaskInstance reads and runs it.
    const lease = await env.cache.acquire(data.package.name, data.package.sha1);
    try {
      return await runFromPackage(env, { job, token, data, packageDir: lease.dir, mirror, signal, cancelChecked });
    } finally {
      lease.release();
    }
  } catch (error) {
    // A cancel found by the check wins over whatever failed meanwhile.
    await cancelChecked;
    if (signal.reason instanceof TaskCancelledError) {
      throw signal.reason;
    }
    if (signal.reason instanceof NodeShutdownError && token !== undefined) {
      // Killed by the drain timeout: not the task's fault. Parked here (this node is stopped),
      // the masters' sweep hands it to a live node; parked (delayed, not active), it is a
      // hand-back and does not count toward the master's maxReroutes.
      await job.moveToDelayed(Date.now(), token);
      throw new DelayedError();
    }
    if (error instanceof InfrastructureError && token !== undefined) {
      await retryInfrastructure(env, job, data, mirror, error, token);
    }
    throw error;
  } finally {
    // Before BullMQ finishes the job: the log is complete when a client reads the result.
    await mirror.finish();
  }
}

/**
 * Aborts the run with a `TaskCancelledError` when a cancel was asked before its job reached this
 * node (the request's message is long gone; its key stays), or with the Redis error when the key
 * cannot be read: no task starts unchecked. Never rejects.
 */
async function checkCancelKey(env: ExecutionEnv, instanceId: string, abort: (reason: Error) => void): Promise<void> {
  try {
    if (await env.cancels.requested(instanceId)) {
      abort(new TaskCancelledError(instanceId));
    }
  } catch (error) {
    abort(error instanceof Error ? error : new Error(String(error)));
  }
}

/** Retries a sandbox set-up failure without using the task's attempts, a bounded number of times. */
async function retryInfrastructure(
  env: ExecutionEnv,
  job: Job<NodeJobData>,
  data: NodeJobData,
  mirror: RedisMirror,
  error: InfrastructureError,
  token: string,
): Promise<never> {
  const failures = (data.infraFailures ?? 0) + 1;
  env.logger.error({ instanceId: data.instanceId, err: error.message, failures }, 'sandbox set-up failed');
  mirror.log(`infrastructure error on node ${env.nodeId}: ${error.message}`);
  if (failures >= MAX_INFRA_FAILURES) {
    throw new InfrastructureError(`infrastructure error on node ${env.nodeId} (${failures} times): ${error.message}`);
  }
  await mirror.finish();
  await job.updateData({ ...job.data, infraFailures: failures });
  await job.moveToDelayed(Date.now() + 1000 * failures, token);
  throw new DelayedError();
}

interface PackageRun {
  job: Job<NodeJobData>;
  token: string | undefined;
  data: NodeJobData;
  packageDir: string;
  mirror: RedisMirror;
  signal: AbortSignal;
  /** Settles once the cancel key was checked (`checkCancelKey`); the task starts only after. */
  cancelChecked: Promise<void>;
}

async function runFromPackage(env: ExecutionEnv, run: PackageRun): Promise<unknown> {
  const { job, token, data, packageDir, mirror, signal, cancelChecked } = run;
  const manifest = await cachedManifest(data.package.name, data.package.sha1, packageDir);
  const task = manifest.tasks[data.task];
  if (task === undefined) {
    throw new UnknownTaskError(
      `Expected package ${data.package.name}@${data.package.sha1} to define task ${data.task}, found none`,
    );
  }
  if (task.kind === 'sequence') {
    // A sequence's steps are TaskInstances of their own, added by the master: it has no node job.
    throw new UnknownTaskError(
      `Expected task ${data.task} to be a simple or parallel task, got a ${taskKind(task)} task`,
    );
  }
  const limits = limitsOf(env, data, { task: task.limits, package: manifest.limits }, mirror);
  if (task.kind === 'parallel') {
    return coordinate({ env, job, token, data, task, packageDir, limits, mirror, signal });
  }
  const secrets = await secretsOf(env, data, task, mirror);
  const attempt = job.attemptsMade + 1;
  mirror.log(
    `running ${data.ref} on node ${env.nodeId} (attempt ${attempt}, timeout ${limits.timeoutMs} ms${env.bwrap ? '' : ', UNSANDBOXED'})`,
  );
  if (env.bwrap === undefined) {
    env.logger.warn({ instanceId: data.instanceId }, 'UNSAFE: running a task without a sandbox');
  }
  const network = networkOf(env, data, task, mirror);
  try {
    const run = () =>
      runSimpleTask(
        env.warmPool,
        {
          ...{ packageDir, task, input: data.input, instanceId: data.instanceId, attempt, limits, signal },
          startAfter: cancelChecked,
          // The sandbox exits once this job's ending is recorded in Redis (`handoffs.ts`).
          exitAfter: env.handoffs.after(job.id ?? ''),
          ...{ bwrap: env.bwrap, prlimit: env.prlimit, cgroups: env.cgroups, runtimeDir: env.runtimeDir },
          sandboxUser: env.options.sandboxUser,
          ...(data.env !== undefined ? { env: data.env } : {}),
          ...(Object.keys(secrets).length > 0 ? { secrets } : {}),
          ...(network !== undefined ? { network } : {}),
          onProgress: (value) => mirror.progress(value),
          onLog: (line) => mirror.log(line),
          onStarted: (seconds) => env.metrics.sandboxStarted(seconds, 'task'),
          onTeardown: env.teardowns.track,
        },
        data.package,
      );
    // Timed inside the slot: waiting for one is queueing, not running.
    const value = await env.gate.with(() =>
      env.metrics.timeRun(data, checkedRun(run, data, task), (error) => endingOf(error, signal).kind),
    );
    // A secret is never stored in clear, not even in a result the task chose to return.
    return mirror.maskValue(value);
  } catch (error) {
    mirror.maskError(error);
    env.logger.info({ instanceId: data.instanceId, reason: (error as Error).message }, 'task failed');
    throw error;
  }
}

/**
 * `run`, then its value checked against the task's `output` schema: timed together, a value that
 * breaks the schema is measured as the failure the master counts it as, not as completed.
 */
function checkedRun(run: () => Promise<unknown>, data: NodeJobData, task: SimpleTaskSpec): () => Promise<unknown> {
  return async () => {
    const value = await run();
    checkTaskOutput(data.task, task, value, data.instanceId);
    return value;
  };
}

/** The limits that apply on this node, each one clamped to its maximum said in the TaskInstance's log. */
function limitsOf(
  env: ExecutionEnv,
  data: NodeJobData,
  declared: { task: TaskLimits | undefined; package: TaskLimits | undefined },
  mirror: RedisMirror,
): CompiledTaskLimits {
  const { limits, clamped } = resolveLimits(
    { submission: data.limits, ...declared },
    env.options.taskLimits,
    env.options.maxTaskLimits,
  );
  for (const clamp of clamped) {
    mirror.log(
      `asked for a ${describeLimit(clamp.name, clamp.asked)}; this node allows at most ${describeLimit(clamp.name, clamp.allowed)}`,
    );
  }
  return limits;
}

/** The sandbox network of a simple task's run: its declared endpoints, each allowed by this node or not. */
function networkOf(env: ExecutionEnv, data: NodeJobData, task: SimpleTaskSpec, mirror: RedisMirror) {
  return taskNetwork(task.network, {
    ...{ nodeId: env.nodeId, instanceId: data.instanceId, policy: env.options.allowConnect },
    ...{ logger: env.logger, metrics: env.metrics, log: (line: string) => mirror.log(line) },
  });
}

/**
 * The secret values of a simple task's run (a module's or a command's), opened before its
 * sandbox starts; from here on the mirror masks them in every log line and error.
 */
async function secretsOf(
  env: ExecutionEnv,
  data: NodeJobData,
  task: SimpleTaskSpec,
  mirror: RedisMirror,
): Promise<Record<string, string>> {
  const secrets = await openTaskSecrets(
    env.redis,
    env.keys,
    env.options.secretKey,
    env.nodeId,
    task.secrets,
    data.secrets,
  );
  mirror.mask(Object.values(secrets));
  return secrets;
}

/**
 * How a run ended, from what it threw and why its signal was aborted. The abort reason wins:
 * the launcher may report a killed run with an error of its own rather than the reason.
 */
export function endingOf(error: unknown, signal?: AbortSignal): TaskEnding {
  if (signal?.reason instanceof TaskCancelledError || error instanceof TaskCancelledError) {
    return { kind: 'cancelled' };
  }
  if (error instanceof TaskTimeoutError) {
    return { kind: 'timeout', timeoutMs: error.timeoutMs };
  }
  if (error instanceof LimitExceededError) {
    return { kind: 'limit', limit: error.limit, value: error.value };
  }
  if (error instanceof InfrastructureError) {
    return { kind: 'infrastructure' };
  }
  if (error instanceof TaskUnrecoverableError) {
    return { kind: 'failed', unrecoverable: true };
  }
  if (
    error instanceof InvalidJobDataError ||
    error instanceof SecretUnavailableError ||
    error instanceof PackageRejectedError ||
    error instanceof UnknownTaskError
  ) {
    return { kind: 'rejected' };
  }
  return { kind: 'failed' };
}

/**
 * An ending tydra decided (cancel, timeout, limit, refusal) reads as its message alone: the stack
 * BullMQ would store is the node's own code, meaningless to whoever reads the failed job.
 */
function withoutStack(error: Error): Error {
  error.stack = error.message;
  return error;
}

/**
 * What BullMQ gets: `UnrecoverableError` for what a retry cannot fix, a plain Error carrying the
 * task's own message and stack (BullMQ stores them as the failure reason and stack trace).
 */
function toBullMQError(error: unknown, ending: TaskEnding, data: Partial<NodeJobData> | undefined): Error {
  const message = error instanceof Error ? error.message : String(error);
  switch (ending.kind) {
    case 'cancelled':
      return withoutStack(new UnrecoverableError(new TaskCancelledError(data?.instanceId ?? '').message));
    case 'timeout':
    case 'limit':
      // Not retried unless asked: a task that broke a limit would most likely break it again.
      return withoutStack(
        data?.retryOnLimit === true && error instanceof Error ? new Error(message) : new UnrecoverableError(message),
      );
    case 'rejected':
    case 'infrastructure':
      return withoutStack(new UnrecoverableError(message));
    default:
      break;
  }
  if (error instanceof TaskFailedError) {
    // The task said a retry cannot help (`ctx.fail`): BullMQ then fails the job at once.
    const failure = error instanceof TaskUnrecoverableError ? new UnrecoverableError(message) : new Error(message);
    failure.stack = error.remoteStack ?? message;
    return failure;
  }
  return error instanceof Error ? error : new Error(message);
}
