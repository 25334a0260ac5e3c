/**
 * An operator's hold on nodes from outside the roles: drain a node (it gets no new work, what
 * waits on it moves to other nodes) and resume it (see `lib/master/node-drain.ts`). Used by
 * `tydra node drain|resume`; the dashboard drives the same steps over its own connection.
 * Bounded like a client: with Redis out of reach a call fails after `connectTimeoutMs`.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import { type NodeJobData, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE, type TaskInstanceData } from '../../queues/tasks.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { QUIT_MS, settlesWithin } from '../core/bounded-close.js';
import { type Logger, silentLogger } from '../core/logger.js';
import { drainNode, type NodeDrainDeps, resumeNode } from '../master/node-drain.js';
import { BOUNDED_QUEUE_OPTIONS, createBoundedRedis, whenReachable } from '../redis/connection.js';
import { dropConnections } from '../redis/force-disconnect.js';
import { createKeys, type Keyspace } from '../redis/keys.js';

export interface NodeControlOptions {
  redis: string;
  /** The namespace (`lib/core/namespace.ts`). @defaultValue `tydra` */
  namespace?: string;
  /** How long a call waits for an unreachable Redis. @defaultValue 10 s */
  connectTimeoutMs?: number;
  logger?: Logger;
}

export class NodeControl {
  private readonly redis: Redis;
  private readonly keys: Keyspace;
  private readonly queues = new Map<string, Queue>();
  private readonly deps: NodeDrainDeps;

  constructor(options: NodeControlOptions) {
    this.keys = createKeys(options.namespace);
    this.redis = createBoundedRedis(options.redis, options.connectTimeoutMs ?? 10_000);
    const logger = (options.logger ?? silentLogger()).child({ component: 'node-control' });
    this.redis.on('error', (error) => logger.debug({ err: error.message }, 'redis connection error'));
    const tasksQueue = this.queue<TaskInstanceData>(TASKS_QUEUE);
    this.deps = {
      redis: this.redis,
      keys: this.keys,
      registry: new NodeRegistry(this.redis, this.keys),
      logger,
      tasksQueue,
      nodeQueue: (nodeId) => this.queue<NodeJobData>(nodeQueueName(nodeId)),
    };
  }

  /** Marks the node draining, pauses its queue and moves what waits there; returns how many moved. */
  async drain(nodeId: string): Promise<{ moved: number }> {
    await whenReachable(this.redis);
    return drainNode(this.deps, nodeId);
  }

  /** Gives the node work again. */
  async resume(nodeId: string): Promise<void> {
    await whenReachable(this.redis);
    await resumeNode(this.deps, nodeId);
  }

  async close(): Promise<void> {
    const graceful = (async () => {
      await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()));
      await this.redis.quit().catch(() => this.redis.disconnect());
    })();
    if (!(await settlesWithin(graceful, QUIT_MS))) {
      dropConnections([...this.queues.values(), this.redis]);
    }
  }

  private queue<T>(name: string): Queue<T> {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix, ...BOUNDED_QUEUE_OPTIONS });
      // Errors reach the caller through the commands that fail.
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue as Queue<T>;
  }
}
