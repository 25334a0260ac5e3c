/**
 * Which nodes exist and which are alive. Each node writes a heartbeat into `tydra:nodes` (a ZSET
 * scored by time) and its description into `tydra:node:<id>`. A node is alive (receives new
 * work) while its last heartbeat is younger than three heartbeat periods. A node is lost (the
 * masters take back the jobs waiting in its queue) once it stopped, or once it has been silent
 * for longer than both three heartbeat periods and its BullMQ lock duration: a node whose event
 * loop is blocked, or whose machine is saturated, misses heartbeats but is not dead, and its
 * running jobs' locks (renewed by the same event loop) say so only for that long. Stopped and
 * lost nodes stay listed while their queues may hold jobs; the masters' sweep forgets them after
 * the retention period (see `node-sweeper.ts`).
 *
 * An operator may mark a node draining (`tydra node drain`, the board's pause of its queue): the
 * masters send it nothing new and move what waits in its queue to other nodes, while it finishes
 * what it runs. The mark is a field of its description, which its heartbeat leaves alone: it
 * holds until `resume`, across restarts of the node.
 */
import type { Redis } from 'ioredis';

import type { Keyspace } from '../redis/keys.js';
import { listNodes } from '../redis/registry-commands.js';
import { type NodeFacts, nodeFactsFields, readNodeFacts } from './node-facts.js';

/** A node as the registry sees it; its facts (`node-facts.ts`) are undefined until it publishes them. */
export interface NodeInfo extends Partial<NodeFacts> {
  id: string;
  /** TaskInstances it runs at once. */
  concurrency: number;
  hostname: string;
  pid: number;
  startedAt: number;
  heartbeatMs: number;
  /** BullMQ lock duration of its running jobs. */
  lockDurationMs: number;
  /** Last heartbeat, or when it stopped (ms since the epoch). */
  lastSeen: number;
  /** `running`, or `stopped` after a clean shutdown. */
  state: 'running' | 'stopped';
  /** Heard from within three heartbeat periods. */
  alive: boolean;
  /** Marked draining by an operator: it gets no new work, and what waits in its queue moves. */
  draining: boolean;
  /** Stopped, or silent for longer than three heartbeat periods and its lock duration: its waiting work is taken back. */
  lost: boolean;
  /** `name@sha1` of the versions it has a pre-started sandbox for, at its last heartbeat. */
  warm: string[];
  /** `name@sha1` of the versions in its package cache (the most recently used ones), at its last heartbeat. */
  cached: string[];
  /** Its warm pool at its last heartbeat; absent for a node that publishes none. */
  pool?: NodePoolInfo;
}

/** A node's warm pool as its heartbeat publishes it (see `lib/node/warm-pool.ts`). */
export interface NodePoolInfo {
  /** Pooled sandboxes. */
  size: number;
  /** The most it keeps (`--warm-max`). */
  max: number;
  /** TaskInstances that claimed a pooled sandbox, and that found none, since it started. */
  hits: number;
  misses: number;
}

export type NodeDescription = Pick<
  NodeInfo,
  'id' | 'concurrency' | 'hostname' | 'pid' | 'startedAt' | 'heartbeatMs' | 'lockDurationMs'
> &
  Partial<Pick<NodeInfo, 'warm' | 'cached' | 'pool'>>;

/** Most cached versions a heartbeat names. */
const MAX_PUBLISHED_VERSIONS = 64;

/** Lock duration assumed for a node registered by a version that did not publish it (BullMQ's default). */
const DEFAULT_LOCK_MS = 30_000;

export class NodeRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keyspace,
  ) {}

  /** Registers or refreshes `node`, with the facts it publishes (`node-facts.ts`) when given. */
  async heartbeat(node: NodeDescription & { facts?: NodeFacts }, now = Date.now()): Promise<void> {
    const { facts, warm, cached, pool, ...plain } = node;
    const published = {
      ...(facts !== undefined ? nodeFactsFields(facts) : {}),
      ...(warm !== undefined ? { warm: JSON.stringify(warm.slice(-MAX_PUBLISHED_VERSIONS)) } : {}),
      ...(cached !== undefined ? { cached: JSON.stringify(cached.slice(-MAX_PUBLISHED_VERSIONS)) } : {}),
      ...(pool !== undefined ? { pool: JSON.stringify(pool) } : {}),
    };
    await this.redis
      .multi()
      .zadd(this.keys.nodes, now, node.id)
      .hset(this.keys.nodeInfo(node.id), { ...plain, ...published, state: 'running' })
      .exec();
  }

  /**
   * A clean stop: the node stays listed (its queue remains visible) but is no longer alive. Its
   * score becomes the stop time, from which its retention period runs.
   */
  async markStopped(nodeId: string, now = Date.now()): Promise<void> {
    await this.redis
      .multi()
      .zadd(this.keys.nodes, now, nodeId)
      .hset(this.keys.nodeInfo(nodeId), 'state', 'stopped')
      .exec();
  }

  /**
   * Marks a registered node draining, or not; returns false (and changes nothing) for a node the
   * registry does not know.
   */
  async setDraining(nodeId: string, draining: boolean): Promise<boolean> {
    if ((await this.redis.zscore(this.keys.nodes, nodeId)) === null) {
      return false;
    }
    if (draining) {
      await this.redis.hset(this.keys.nodeInfo(nodeId), 'draining', '1');
    } else {
      await this.redis.hdel(this.keys.nodeInfo(nodeId), 'draining');
    }
    return true;
  }

  async list(now = Date.now()): Promise<NodeInfo[]> {
    // One script: the ZSET and every description, one round trip at each dispatch.
    const nodes = await listNodes(this.redis, this.keys);
    return nodes.map(({ id, lastSeen, info: raw }) => {
      const heartbeatMs = Number(raw.heartbeatMs) || 5000;
      const lockDurationMs = Number(raw.lockDurationMs) || DEFAULT_LOCK_MS;
      const state = raw.state === 'stopped' ? 'stopped' : 'running';
      const silentMs = now - lastSeen;
      return {
        id,
        concurrency: Number(raw.concurrency) || 1,
        hostname: raw.hostname ?? '',
        pid: Number(raw.pid) || 0,
        startedAt: Number(raw.startedAt) || 0,
        heartbeatMs,
        lockDurationMs,
        lastSeen,
        state,
        alive: state === 'running' && silentMs < 3 * heartbeatMs,
        draining: raw.draining === '1',
        lost: state === 'stopped' || silentMs > Math.max(3 * heartbeatMs, lockDurationMs),
        ...readNodeFacts(raw),
        warm: stringList(raw.warm),
        cached: stringList(raw.cached),
        ...poolOf(raw.pool),
      };
    });
  }

  async live(now = Date.now()): Promise<NodeInfo[]> {
    return (await this.list(now)).filter((node) => node.alive);
  }

  /** The nodes that receive new work: alive and not draining. */
  async schedulable(now = Date.now()): Promise<NodeInfo[]> {
    return (await this.list(now)).filter((node) => node.alive && !node.draining);
  }
}

/** A JSON list of strings a node wrote; anything else (an older node, a stray write) is none. */
function stringList(text: string | undefined): string[] {
  const value = parseJson(text);
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

function poolOf(text: string | undefined): { pool?: NodePoolInfo } {
  const value = parseJson(text);
  if (typeof value !== 'object' || value === null) {
    return {};
  }
  const record = value as Record<string, unknown>;
  const count = (key: string): number => (Number.isSafeInteger(record[key]) ? (record[key] as number) : 0);
  return { pool: { size: count('size'), max: count('max'), hits: count('hits'), misses: count('misses') } };
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
