/**
 * Step 1 of a TaskInstance: choose a live node, record the choice in the job data, add the node
 * job as a child of the TaskInstance and park the TaskInstance in `waiting-children`.
 * A TaskInstance the sweeper took back from a lost node comes here again with its old dispatch
 * still recorded; the sweeper's record (`{NAME}:taken-back:<id>`) says so, and whether that node
 * had started it: only such a loss counts toward `maxReroutes`.
 * The child is added with `ignoreDependencyOnFailure`, not `failParentOnFailure`, because the
 * latter replaces the task's error with BullMQ's generic "child failed" text.
 */
import { DelayedError, type Queue, UnrecoverableError, WaitingChildrenError } from 'bullmq';
import type { Redis } from 'ioredis';

import { NODE_JOB, NODE_JOB_OPTIONS, type NodeJobData } from '../../queues/node.js';
import { withoutEnding } from '../../queues/task-ending.js';
import type { TaskInstanceData } from '../../queues/tasks.js';
import type { NodeRegistry } from '../cluster/node-registry.js';
import { TaskCancelledError, UnknownTaskError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { PackageStore } from '../packages/store.js';
import type { Keyspace } from '../redis/keys.js';
import { clearTakenBack, readTakenBack } from '../redis/sweep-commands.js';
import { chooseNode, type NodeLoad } from './choose-node.js';
import type { CompiledMasterOptions } from './options.js';
import { cancelRequested } from './sequence-children.js';
import { failWith, type TaskInstanceJob } from './settle.js';

export interface DispatchDeps {
  keys: Keyspace;
  options: Pick<CompiledMasterOptions, 'maxReroutes' | 'noNodeRetryMs'>;
  redis: Redis;
  registry: NodeRegistry;
  store: PackageStore;
  logger: Logger;
  nodeQueue: (nodeId: string) => Queue<NodeJobData>;
  /** A counter that rotates ties between equally loaded nodes. */
  nextTurn: () => number;
}

/**
 * Sends the TaskInstance to a node and parks it (throws `WaitingChildrenError`), or delays it
 * while no node is live (throws `DelayedError`). Returns only when the child finished before the
 * TaskInstance could be parked: the caller settles it then.
 */
export async function dispatch(deps: DispatchDeps, job: TaskInstanceJob, token: string): Promise<void> {
  const instanceId = job.id ?? '';
  // A fresh TaskInstance needs a node and its reference held: asked for alongside the cancel
  // check below, so the three go out together rather than one after the other.
  const early = job.data.dispatch === undefined ? prepareDispatch(deps, job) : undefined;
  // Awaited below on every path that uses it; one that throws first must not leave it unhandled.
  void early?.catch(() => undefined);
  // A step of a sequence also stops when its sequence was cancelled (the client's cascade may
  // have listed the sequence's children before this one was added).
  if (await cancelRequested(deps.redis, deps.keys, [instanceId, job.data.parentSequence?.id])) {
    await early?.catch(() => undefined);
    const cancelled = new TaskCancelledError(instanceId);
    throw await failWith(job, { kind: 'cancelled' }, new UnrecoverableError(cancelled.message));
  }
  await foldTakenBack(deps, job);
  let target = job.data.dispatch;
  const lost = job.data.lostNodes ?? [];
  if (target === undefined && lost.length > deps.options.maxReroutes) {
    await early?.catch(() => undefined);
    const error = new Error(
      `Expected the TaskInstance to finish on a live node, but ${lost.length} node(s) were lost while holding it (${lost.join(', ')}); giving up`,
    );
    throw await failWith(job, { kind: 'infrastructure' }, error);
  }
  if (target === undefined) {
    const { nodeId, refError } = await (early ?? prepareDispatch(deps, job));
    if (refError !== undefined) {
      throw await failWith(job, { kind: 'rejected' }, new UnrecoverableError(refError.message));
    }
    if (nodeId === undefined) {
      deps.logger.debug({ instanceId }, 'no live node; retrying dispatch later');
      await job.moveToDelayed(Date.now() + deps.options.noNodeRetryMs, token);
      throw new DelayedError();
    }
    // Record the choice before adding the child: a master that crashes between the two
    // leaves a TaskInstance that the next master re-dispatches to the same node, where the
    // fixed job id makes the second add a no-op.
    target = { nodeId, at: Date.now() };
    // A new dispatch starts without the ending of an earlier run (a retry from Bull Board).
    await job.updateData({ ...withoutEnding(job.data), dispatch: target });
  }
  // The log line and the child go out together: neither needs the other.
  await Promise.all([addNodeJob(deps.nodeQueue(target.nodeId), job), job.log(`dispatched to node ${target.nodeId}`)]);
  if (await job.moveToWaitingChildren(token)) {
    throw new WaitingChildrenError();
  }
}

/**
 * The node to send a TaskInstance to, and its package reference held again, both asked at once.
 * Holding it again is a no-op for a normal submission; it covers a TaskInstance added to `tasks`
 * by other means (it must not run on a version the prune job is free to delete, nor on one that
 * is gone). A Redis error rejects; a refused reference is returned, for the caller to fail with.
 */
async function prepareDispatch(
  deps: DispatchDeps,
  job: TaskInstanceJob,
): Promise<{ nodeId: string | undefined; refError: Error | undefined }> {
  const { name, sha1 } = job.data.package;
  const needsSecrets = Object.keys(job.data.secrets ?? {}).length > 0;
  const [nodeId, refError] = await Promise.all([
    pickNode(deps, `${name}@${sha1}`, needsSecrets),
    refusedReference(deps, name, sha1, job.id ?? ''),
  ]);
  return { nodeId, refError };
}

/** Holds the reference; returns the refusal (version gone or undeployed), throws other errors. */
async function refusedReference(
  deps: DispatchDeps,
  name: string,
  sha1: string,
  instanceId: string,
): Promise<UnknownTaskError | undefined> {
  try {
    await deps.store.takeRef(name, sha1, instanceId, { alreadyHeld: true });
    return undefined;
  } catch (error) {
    if (error instanceof UnknownTaskError) {
      return error;
    }
    throw error;
  }
}

/**
 * If the sweeper took the current dispatch's node job back, forgets that dispatch and records
 * the node (in `lostNodes` only if it had started the TaskInstance). Idempotent: the record
 * matches only the dispatch it ended (by node and time), so one left behind by a crash before
 * its deletion is ignored, and a crash before the update folds it again.
 */
async function foldTakenBack(deps: DispatchDeps, job: TaskInstanceJob): Promise<void> {
  const instanceId = job.id ?? '';
  const current = job.data.dispatch;
  if (current === undefined) {
    return;
  }
  const record = await readTakenBack(deps.redis, deps.keys, instanceId);
  if (record === undefined || record.nodeId !== current.nodeId || record.dispatchAt !== current.at) {
    return;
  }
  const { dispatch: _ended, ...rest } = job.data;
  await job.updateData({
    ...rest,
    takenBackFrom: [...(rest.takenBackFrom ?? []), record.nodeId],
    // A parallel TaskInstance's node job only coordinates (its split and reduce run in sandboxes,
    // its units elsewhere) and carries on from its state in Redis: losing its node says nothing
    // about the task, and must not use up maxReroutes over a long run.
    ...(record.ran && rest.kind !== 'parallel' ? { lostNodes: [...(rest.lostNodes ?? []), record.nodeId] } : {}),
  });
  await clearTakenBack(deps.redis, deps.keys, instanceId);
}

/** Adds the node job: the TaskInstance's fields a node needs, with the same id, as its child. */
async function addNodeJob(queue: Queue<NodeJobData>, job: TaskInstanceJob): Promise<void> {
  const instanceId = job.id ?? '';
  const data: TaskInstanceData = job.data;
  const parallel = data.kind === 'parallel';
  await queue.add(
    NODE_JOB,
    {
      instanceId,
      ref: data.ref,
      package: data.package,
      task: data.task,
      input: data.input,
      limits: { ...data.limits, ...(data.timeoutMs !== undefined ? { timeoutMs: data.timeoutMs } : {}) },
      ...(data.retryOnLimit ? { retryOnLimit: true } : {}),
      ...(parallel ? { kind: data.kind, attempts: data.attempts } : {}),
      ...(data.maxFailedWorkunits !== undefined ? { maxFailedWorkunits: data.maxFailedWorkunits } : {}),
      ...(data.env !== undefined ? { env: data.env } : {}),
      ...(data.secrets !== undefined ? { secrets: data.secrets } : {}),
    },
    {
      ...NODE_JOB_OPTIONS,
      jobId: instanceId,
      // A parallel task's attempts are each workunit's; its coordinating node job runs once.
      attempts: parallel ? 1 : data.attempts,
      // The TaskInstance's priority again on its node, so it overtakes lower ones queued there too.
      ...(data.priority !== undefined ? { priority: data.priority } : {}),
      ...(data.backoff !== undefined && !parallel
        ? { backoff: { type: data.backoff.type, delay: data.backoff.delayMs } }
        : {}),
      parent: { id: instanceId, queue: job.queueQualifiedName },
      ignoreDependencyOnFailure: true,
    },
  );
}

/**
 * The live node not draining with the lowest load per slot, warm or cached for `version` if one
 * ties (see `chooseNode`). A TaskInstance that needs secrets goes only to nodes holding a secret
 * key, when any does (a node of a version that does not say counts as holding one); when none
 * does, to any: that node refuses it with the message that says what is missing, rather than it
 * waiting for ever for a node that may never come.
 */
async function pickNode(deps: DispatchDeps, version: string, needsSecrets: boolean): Promise<string | undefined> {
  const live = await deps.registry.schedulable();
  const holders = needsSecrets ? live.filter((node) => node.secretKey !== false) : live;
  const nodes = holders.length > 0 ? holders : live;
  if (nodes.length === 1) {
    // The only choice: its load would not change it.
    return nodes[0]?.id;
  }
  const loads = await Promise.all(
    nodes.map(async (node) => {
      const counts = await deps.nodeQueue(node.id).getJobCounts('wait', 'active', 'prioritized', 'delayed');
      const pending = Object.values(counts).reduce((sum, count) => sum + count, 0);
      const load: NodeLoad = { id: node.id, concurrency: node.concurrency, pending };
      if (node.warm.includes(version)) {
        load.affinity = 'warm';
      } else if (node.cached.includes(version)) {
        load.affinity = 'cached';
      }
      return load;
    }),
  );
  return chooseNode(loads, deps.nextTurn())?.id;
}
