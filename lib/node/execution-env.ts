/** What a node gives each run of a node job or a workunit batch, fixed once its sandbox is prepared. */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

import type { WorkunitBatchData } from '../../queues/workunits.js';
import type { CgroupSupport } from '../../sandbox/launcher/cgroup/support.js';
import type { Logger } from '../core/logger.js';
import type { PackageCache } from '../packages/cache/package-cache.js';
import type { Keyspace } from '../redis/keys.js';
import type { CancelListener } from './cancel-listener.js';
import type { Handoffs } from './handoffs.js';
import type { NodeMetrics } from './node-metrics.js';
import type { CompiledNodeOptions } from './options.js';
import type { InstanceReporter } from './parallel/instance-report.js';
import type { SlotGate } from './slot-gate.js';
import type { Teardowns } from './teardowns.js';
import type { WarmPool } from './warm-pool.js';

export interface ExecutionEnv {
  nodeId: string;
  options: Pick<CompiledNodeOptions, 'taskLimits' | 'maxTaskLimits' | 'sandboxUser' | 'secretKey' | 'allowConnect'>;
  cache: PackageCache;
  tasksQueue: Queue;
  cancels: CancelListener;
  logger: Logger;
  /** Absolute path of bwrap; undefined runs task processes WITHOUT a sandbox (development only). */
  bwrap: string | undefined;
  prlimit: string | undefined;
  cgroups: CgroupSupport | undefined;
  runtimeDir: string | undefined;
  redis: Redis;
  /** Every key and queue of the node's namespace. */
  keys: Keyspace;
  /** The node's slots, shared with its workunit batches. */
  gate: SlotGate;
  reporter: InstanceReporter;
  /** The workunits queue of a parallel TaskInstance with this secret mapping (`workunitsQueueOf`). */
  workunitsQueueOf: (secrets: Readonly<Record<string, string>> | undefined) => Queue<WorkunitBatchData>;
  /**
   * Slots of all live nodes (at least 1), or of those holding a secret key, for sizing workunit
   * batches and holding split back.
   */
  clusterSlots: (keyHolders?: boolean) => Promise<number>;
  /** This node's metrics (`tydra_run_duration_seconds`, …). */
  metrics: NodeMetrics;
  /** Sandboxes still ending after their TaskInstance settled; the node waits for them at close. */
  teardowns: Teardowns;
  /** When a node job's ending is recorded in Redis: its sandbox exits after (`handoffs.ts`). */
  handoffs: Handoffs;
  /** Pre-started sandboxes for simple JavaScript tasks (`warm-pool.ts`); absent: every sandbox starts cold. */
  warmPool?: WarmPool;
}
