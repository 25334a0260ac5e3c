/**
 * Rescues TaskInstances stranded on the queue of a node that died or stopped, and forgets nodes
 * that have been gone for longer than the retention period.
 *
 * BullMQ recovers a stalled job only from a Worker on the same queue, and a per-node queue has
 * exactly one consumer: its node. When that node is gone for good, nobody takes its waiting jobs
 * and its active ones stay active. The sweeper, run by every master, looks at the queues of lost
 * nodes (see `node-registry.ts`) and takes back each job whose lock is gone, in one atomic
 * script (`take-back-node-job-7.lua`): it removes the node job, which moves the TaskInstance
 * from `waiting-children` back to `wait`, and records whether the node had started it. The next
 * dispatch reads that record: only a node lost while running the TaskInstance counts toward
 * `maxReroutes`; work a node never started (handed back by a drain, or waiting on a node that
 * died) moves for free. A job whose node still holds its lock is left alone.
 */
import type { JobType, Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { NodeJobData } from '../../queues/node.js';
import { taskInstanceSchema, type TaskInstanceData } from '../../queues/tasks.js';
import type { NodeInfo, NodeRegistry } from '../cluster/node-registry.js';
import type { Logger } from '../core/logger.js';
import type { Keyspace } from '../redis/keys.js';
import { RetireNodeStatus, retireNode, TakeBackStatus, takeBackNodeJob } from '../redis/sweep-commands.js';

/** Jobs looked at per lost node and sweep, so one sweep stays short. */
const BATCH = 200;

/** How long a take-back record waits for the TaskInstance's next dispatch (a lost record only costs a second sweep). */
const RECORD_TTL_MS = 7 * 24 * 3600 * 1000;

export interface SweeperDeps {
  redis: Redis;
  keys: Keyspace;
  registry: NodeRegistry;
  nodeQueue: (nodeId: string) => Queue<NodeJobData>;
  /** Closes and forgets the master's Queue of a retired node. */
  forgetNodeQueue: (nodeId: string) => Promise<void>;
  tasksQueue: Queue<TaskInstanceData>;
  logger: Logger;
  /** Who holds the per-node sweep lock (for debugging). */
  owner: string;
  lockMs: number;
  /** A lost node with an empty queue is forgotten this long after it was last heard from. */
  retentionMs: number;
}

/** What one sweep did. */
export interface SweepSummary {
  /** TaskInstances taken back from lost nodes. */
  takenBack: number;
  /** Nodes forgotten after their retention period. */
  retired: string[];
}

/** The states a draining node's jobs are moved from: everything it has not started. */
const WAITING_STATES = ['wait', 'prioritized', 'delayed'] as const;
const STRANDED_STATES = [...WAITING_STATES, 'active'] as const;

/**
 * Sweeps every lost node's queue once, then forgets the ones past their retention period; moves
 * what waits on draining nodes (a dispatch that chose one just before it was marked lands there).
 */
export async function sweepDeadNodes(deps: SweeperDeps, now = Date.now()): Promise<SweepSummary> {
  const summary: SweepSummary = { takenBack: 0, retired: [] };
  for (const node of await deps.registry.list(now)) {
    if (!node.lost) {
      if (node.draining) {
        summary.takenBack += await takeBackWaiting(deps, node.id);
      }
      continue;
    }
    // One master per lost node at a time: it keeps the logs and the retirement tidy (the
    // take-back itself is atomic, so two masters could not both take the same job back).
    const locked = await deps.redis.set(deps.keys.sweepLock(node.id), deps.owner, 'PX', deps.lockMs, 'NX');
    if (locked === null) {
      continue;
    }
    try {
      summary.takenBack += await sweepNode(deps, node.id, STRANDED_STATES, 'is gone');
      if (await retireIfExpired(deps, node, now)) {
        summary.retired.push(node.id);
      }
    } finally {
      await deps.redis.del(deps.keys.sweepLock(node.id));
    }
  }
  return summary;
}

/** What taking jobs back needs (the drain of a live node needs no more). */
export type TakeBackDeps = Pick<SweeperDeps, 'redis' | 'keys' | 'nodeQueue' | 'tasksQueue' | 'logger'>;

/**
 * Moves the TaskInstances waiting in a node's queue (not yet started there) to a new dispatch,
 * for free (they do not count toward `maxReroutes`). What the node runs stays: a job it holds is
 * locked, and the take-back script leaves it.
 */
export async function takeBackWaiting(deps: TakeBackDeps, nodeId: string): Promise<number> {
  return sweepNode(deps, nodeId, WAITING_STATES, 'is draining');
}

async function sweepNode(deps: TakeBackDeps, nodeId: string, states: readonly JobType[], why: string): Promise<number> {
  const queue = deps.nodeQueue(nodeId);
  const jobs = await queue.getJobs([...states], 0, BATCH - 1);
  let takenBack = 0;
  for (const job of jobs) {
    const instanceId = job.data?.instanceId;
    if (job.id === undefined || instanceId === undefined || job.id !== instanceId) {
      continue;
    }
    const dispatchAt = await dispatchedAt(deps, instanceId, nodeId);
    if (dispatchAt === undefined) {
      continue;
    }
    const status = await takeBackNodeJob(deps.redis, deps.keys, {
      queue: queue.name,
      nodeId,
      instanceId,
      tasksQueue: deps.tasksQueue.name,
      dispatchAt,
      now: Date.now(),
      recordTtlMs: RECORD_TTL_MS,
    });
    if (status !== TakeBackStatus.TakenBackRunning && status !== TakeBackStatus.TakenBackWaiting) {
      // Locked (its node is alive after all), finished meanwhile, or gone: not stranded.
      continue;
    }
    takenBack += 1;
    const ran = status === TakeBackStatus.TakenBackRunning;
    // A job the node parked as it stopped (its drain timeout killed the run) waits again, but
    // its run had started there: BullMQ counts every move to active.
    const where = ran ? '' : job.attemptsStarted > 0 ? ' (its run there was stopped)' : ' (it had not started there)';
    await deps.tasksQueue.addJobLog(
      instanceId,
      `node ${nodeId} ${why}; TaskInstance taken back for a new dispatch${where}`,
    );
    deps.logger.warn({ nodeId, instanceId, ran }, `took a TaskInstance back from a node that ${why}`);
  }
  return takenBack;
}

/**
 * The TaskInstance's `dispatch.at` if it is dispatched to `nodeId`. Read outside the script
 * (Lua's cjson is no JSON parser to trust with user input); safe because a TaskInstance's
 * dispatch changes only while it has no pending node job, and the script checks that this job
 * is still that TaskInstance's pending child.
 */
async function dispatchedAt(deps: TakeBackDeps, instanceId: string, nodeId: string): Promise<number | undefined> {
  const raw = await deps.redis.hget(deps.keys.taskJob(deps.tasksQueue.name, instanceId), 'data');
  let dispatch: unknown;
  try {
    dispatch = raw === null ? undefined : (JSON.parse(raw) as { dispatch?: unknown }).dispatch;
  } catch {
    return undefined;
  }
  const parsed = taskInstanceSchema.shape.dispatch.safeParse(dispatch);
  return parsed.success && parsed.data?.nodeId === nodeId ? parsed.data.at : undefined;
}

/**
 * Forgets a node heard from last more than the retention period ago whose queue has no pending
 * job: its registry entry goes in one checked step, then the queue's leftover keys (finished
 * jobs, events) through BullMQ's obliterate, which refuses a queue with an active job. A node
 * that restarts with the same id simply registers again; one that did so in the instant between
 * the two steps could find its queue paused (restart it once more).
 */
async function retireIfExpired(deps: SweeperDeps, node: NodeInfo, now: number): Promise<boolean> {
  if (now - node.lastSeen <= deps.retentionMs) {
    return false;
  }
  const queue = deps.nodeQueue(node.id);
  const status = await retireNode(deps.redis, deps.keys, {
    nodeId: node.id,
    queue: queue.name,
    cutoff: now - deps.retentionMs,
  });
  if (status !== RetireNodeStatus.Retired) {
    return false;
  }
  await queue.obliterate();
  await deps.forgetNodeQueue(node.id);
  deps.logger.info(
    { nodeId: node.id, lastSeen: node.lastSeen },
    'forgot a node gone for longer than the retention period',
  );
  return true;
}
