/**
 * Rescues TaskInstances stranded on the queue of a node that died or stopped.
 *
 * BullMQ recovers a stalled job only from a Worker on the same queue, and a per-node queue has
 * exactly one consumer: its node. When that node is gone for good, nobody takes its waiting jobs
 * and its active ones stay active. The sweeper, run by every master, looks at the queues of nodes
 * that are no longer alive and re-routes each job whose lock is gone: it marks the TaskInstance
 * for a new dispatch (recording the lost node), then removes the node job. Removing a TaskInstance's
 * last pending child moves it from `waiting-children` back to `wait`, and the normal dispatch step
 * then sends it to a live node. A job whose node is still holding its lock (a slow heartbeat, not
 * a death) cannot be removed, so it is left alone and the TaskInstance's mark is rolled back.
 */
import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { NodeJobData } from '../../queues/node.js';
import type { TaskInstanceData } from '../../queues/tasks.js';
import { sweepLockKey } from '../redis/keys.js';
import type { Logger } from '../core/logger.js';
import type { NodeRegistry } from '../cluster/node-registry.js';

/** Jobs looked at per dead node and sweep, so one sweep stays short. */
const BATCH = 200;

export interface SweeperDeps {
  redis: Redis;
  registry: NodeRegistry;
  nodeQueue: (nodeId: string) => Queue<NodeJobData>;
  tasksQueue: Queue<TaskInstanceData>;
  logger: Logger;
  /** Who holds the per-node sweep lock (for debugging). */
  owner: string;
  lockMs: number;
}

/** Sweeps every dead or stopped node's queue once; returns how many TaskInstances were re-routed. */
export async function sweepDeadNodes(deps: SweeperDeps): Promise<number> {
  let rerouted = 0;
  for (const node of await deps.registry.list()) {
    if (node.alive) {
      continue;
    }
    // One master per dead node at a time: two masters re-routing the same job would race.
    const locked = await deps.redis.set(sweepLockKey(node.id), deps.owner, 'PX', deps.lockMs, 'NX');
    if (locked === null) {
      continue;
    }
    try {
      rerouted += await sweepNode(deps, node.id);
    } finally {
      await deps.redis.del(sweepLockKey(node.id));
    }
  }
  return rerouted;
}

async function sweepNode(deps: SweeperDeps, nodeId: string): Promise<number> {
  const queue = deps.nodeQueue(nodeId);
  const jobs = await queue.getJobs(['wait', 'prioritized', 'delayed', 'active'], 0, BATCH - 1);
  let rerouted = 0;
  for (const job of jobs) {
    const instanceId = job.data?.instanceId;
    if (job.id === undefined || instanceId === undefined) {
      continue;
    }
    const instance = await Job.fromId<TaskInstanceData>(deps.tasksQueue, instanceId);
    if (instance === undefined || instance.data.dispatch?.nodeId !== nodeId) {
      continue;
    }
    // A job that finished meanwhile is not stranded (removing it would drop its result).
    const state = await job.getState();
    if (state === 'completed' || state === 'failed' || state === 'unknown') {
      continue;
    }
    const before = instance.data;
    const { dispatch: _lost, ...rest } = before;
    await instance.updateData({ ...rest, lostNodes: [...(before.lostNodes ?? []), nodeId] });
    const removed = await queue.remove(job.id);
    if (removed !== 1) {
      // Still locked: the node (or its lock) is alive after all. Undo the mark.
      await instance.updateData(before);
      continue;
    }
    rerouted += 1;
    await instance.log(`node ${nodeId} is gone; TaskInstance taken back for a new dispatch`);
    deps.logger.warn({ nodeId, instanceId }, 're-routing a TaskInstance from a dead node');
  }
  return rerouted;
}
