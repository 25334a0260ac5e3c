/**
 * Which nodes exist and which are alive. Each node writes a heartbeat into `tydra:nodes` (a ZSET
 * scored by time) and its description into `tydra:node:<id>`. A node is alive while its last
 * heartbeat is younger than three heartbeat periods. Stopped or dead nodes stay listed (their
 * queues may still hold jobs) but never receive new work.
 */
import type { Redis } from 'ioredis';

import { nodeInfoKey, nodesKey } from '../redis/keys.js';

/** A node as the registry sees it. */
export interface NodeInfo {
  id: string;
  /** TaskInstances it runs at once. */
  concurrency: number;
  hostname: string;
  pid: number;
  startedAt: number;
  heartbeatMs: number;
  /** Last heartbeat (ms since the epoch). */
  lastSeen: number;
  /** `running`, or `stopped` after a clean shutdown. */
  state: 'running' | 'stopped';
  alive: boolean;
}

export type NodeDescription = Pick<NodeInfo, 'id' | 'concurrency' | 'hostname' | 'pid' | 'startedAt' | 'heartbeatMs'>;

export class NodeRegistry {
  constructor(private readonly redis: Redis) {}

  async heartbeat(node: NodeDescription, now = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .zadd(nodesKey, now, node.id)
      .hset(nodeInfoKey(node.id), { ...node, state: 'running' })
      .exec();
  }

  /** A clean stop: the node stays listed (its queue remains visible) but is no longer alive. */
  async markStopped(nodeId: string): Promise<void> {
    await this.redis.multi().zadd(nodesKey, 0, nodeId).hset(nodeInfoKey(nodeId), 'state', 'stopped').exec();
  }

  async list(now = Date.now()): Promise<NodeInfo[]> {
    const flat = await this.redis.zrange(nodesKey, 0, -1, 'WITHSCORES');
    const ids: Array<[string, number]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      ids.push([flat[i] as string, Number(flat[i + 1])]);
    }
    const pipeline = this.redis.pipeline();
    for (const [id] of ids) {
      pipeline.hgetall(nodeInfoKey(id));
    }
    const infos = (await pipeline.exec()) ?? [];
    return ids.map(([id, lastSeen], index) => {
      const raw = (infos[index]?.[1] ?? {}) as Record<string, string>;
      const heartbeatMs = Number(raw.heartbeatMs) || 5000;
      const state = raw.state === 'stopped' ? 'stopped' : 'running';
      return {
        id,
        concurrency: Number(raw.concurrency) || 1,
        hostname: raw.hostname ?? '',
        pid: Number(raw.pid) || 0,
        startedAt: Number(raw.startedAt) || 0,
        heartbeatMs,
        lastSeen,
        state,
        alive: state === 'running' && now - lastSeen < 3 * heartbeatMs,
      };
    });
  }

  async live(now = Date.now()): Promise<NodeInfo[]> {
    return (await this.list(now)).filter((node) => node.alive);
  }
}
