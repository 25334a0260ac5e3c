/**
 * Typed wrappers of the node sweeper's scripts in `commands/`: taking a stranded node job back
 * from a node that is gone, and forgetting a node after its retention period. Each builds its
 * script's KEYS and ARGV in the order the header documents and maps the reply to a status.
 */
import type { Redis } from 'ioredis';

import { IllegalStateError } from '../core/errors.js';
import type { Keyspace } from './keys.js';
import { runScript } from './scripts.js';

/** Status codes of `take-back-node-job-7.lua`. */
export enum TakeBackStatus {
  /** Taken back; the node had started it. */
  TakenBackRunning = 2,
  /** Taken back; the node had not started it. */
  TakenBackWaiting = 1,
  Missing = 0,
  Locked = -1,
  NotAChild = -2,
  Finished = -3,
}

/** Status codes of `retire-node-8.lua`. */
export enum RetireNodeStatus {
  Retired = 1,
  NotRegistered = 0,
  RecentlySeen = -1,
  HasPendingJobs = -2,
}

function toStatus<E extends number>(values: Record<string, string | E>, reply: unknown, script: string): E {
  if (typeof reply === 'number' && Object.values(values).includes(reply as E)) {
    return reply as E;
  }
  throw new IllegalStateError(`the ${script} script replied ${JSON.stringify(reply)}`);
}

export interface TakeBackArgs {
  /** The node's queue (`node.<id>`). */
  queue: string;
  nodeId: string;
  /** The node job's id, which is its TaskInstance's id. */
  instanceId: string;
  /** The queue of the TaskInstance, the node job's parent. */
  tasksQueue: string;
  /** When the TaskInstance was dispatched to this node (its `dispatch.at`). */
  dispatchAt: number;
  now: number;
  /** How long the record waits for the TaskInstance's next dispatch. */
  recordTtlMs: number;
}

/** Takes a stranded node job back in one step (see `take-back-node-job-7.lua`). */
export async function takeBackNodeJob(redis: Redis, keys: Keyspace, args: TakeBackArgs): Promise<TakeBackStatus> {
  const job = keys.queueKey(args.queue, args.instanceId);
  const reply = await runScript(redis, {
    script: 'takeBackNodeJob',
    keys: [
      job,
      `${job}:lock`,
      keys.queueKey(args.queue, 'wait'),
      keys.queueKey(args.queue, 'active'),
      keys.queueKey(args.queue, 'delayed'),
      keys.queueKey(args.queue, 'prioritized'),
      keys.takenBack(args.instanceId),
    ],
    argv: [
      keys.queueKey(args.queue, ''),
      args.instanceId,
      args.nodeId,
      keys.taskJob(args.tasksQueue, args.instanceId),
      String(args.dispatchAt),
      String(args.now),
      String(args.recordTtlMs),
    ],
  });
  return toStatus(TakeBackStatus, reply, 'takeBackNodeJob');
}

/** What the sweeper recorded when it took a TaskInstance's node job back. */
export interface TakenBack {
  nodeId: string;
  /** The `dispatch.at` of the dispatch it ended. */
  dispatchAt: number;
  /** The node had started running it: a loss that counts toward `maxReroutes`. */
  ran: boolean;
}

/** The take-back record of a TaskInstance, if any. */
export async function readTakenBack(redis: Redis, keys: Keyspace, instanceId: string): Promise<TakenBack | undefined> {
  const raw = await redis.hgetall(keys.takenBack(instanceId));
  if (raw.node === undefined || raw.dispatchAt === undefined) {
    return undefined;
  }
  return { nodeId: raw.node, dispatchAt: Number(raw.dispatchAt), ran: raw.ran === '1' };
}

/** Deletes the take-back record once the dispatch has folded it into the TaskInstance. */
export async function clearTakenBack(redis: Redis, keys: Keyspace, instanceId: string): Promise<void> {
  await redis.del(keys.takenBack(instanceId));
}

export interface RetireNodeArgs {
  nodeId: string;
  /** The node's queue (`node.<id>`). */
  queue: string;
  /** Retire only if last heard from before this time (ms). */
  cutoff: number;
}

/** Removes a long-gone node with an empty queue from the registry (see `retire-node-8.lua`). */
export async function retireNode(redis: Redis, keys: Keyspace, args: RetireNodeArgs): Promise<RetireNodeStatus> {
  const reply = await runScript(redis, {
    script: 'retireNode',
    keys: [
      keys.nodes,
      keys.nodeInfo(args.nodeId),
      ...['wait', 'active', 'delayed', 'prioritized', 'paused', 'waiting-children'].map((state) =>
        keys.queueKey(args.queue, state),
      ),
    ],
    argv: [args.nodeId, String(args.cutoff)],
  });
  return toStatus(RetireNodeStatus, reply, 'retireNode');
}
