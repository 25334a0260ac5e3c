/**
 * tydra's public API. Everything importable from `tydra` is exported here, by name; nothing
 * else is reachable (package.json `exports` allows no deep imports).
 *
 * Terms: a *package* is a folder with a `tydra.json`, stored by content as `name@sha1`; a *task*
 * is one entry of its manifest; a *TaskInstance* is one submitted run of a task (its id is the
 * job id in the `tasks` queue); a *master* schedules TaskInstances onto *nodes*; a node runs each
 * one in a fresh sandboxed *worker* process.
 */

// client.ts
export { TaskRun, Tydra } from './client.js';
export type { CancelResult, PackageVersionUse, SubmitOptions, TaskState, TaskStatus } from './client.js';
export { DEFAULT_MAX_TASK_LIMITS, DEFAULT_TASK_LIMITS } from './task-limits.js';
export type { TaskLimits } from './task-limits.js';
// master.ts, node.ts, dashboard.ts
export { Master } from './master.js';
export type { MasterState, PruneSummary } from './master.js';
export { TydraNode } from './node.js';
export type { NodeState } from './node.js';
export { Dashboard } from './dashboard.js';
// dev-cluster.ts, redis-server.ts
export { startDevCluster } from './dev-cluster.js';
export type { DevCluster, DevClusterOptions } from './dev-cluster.js';
export { startRedisServer } from './redis-server.js';
export type { RedisServer, RedisServerOptions } from './redis-server.js';
// packages
export { packDirectory } from './pack.js';
export type { PackedPackage } from './pack.js';
export type { DeployResult, PackageVersion, PackageVersionInfo } from './package-store.js';
export type { HealedHolder, PruneDecision, PruneOptions, PruneReport } from './package-pruner.js';
export type { Manifest, TaskSpec } from './manifest.js';
export { parseTaskRef } from './task-ref.js';
export type { TaskRef } from './task-ref.js';
export type { NodeInfo } from './node-registry.js';
// options.ts, logger.ts
export type { DashboardOptions, MasterOptions, NodeOptions, PackageLimits, TydraOptions } from './options.js';
export { createLogger } from './logger.js';
export type { Logger } from './logger.js';
// errors.ts
export {
  CANCELLED_MESSAGE,
  CgroupError,
  IllegalStateError,
  InfrastructureError,
  LimitExceededError,
  TaskCancelledError,
  InvalidOptionError,
  InvalidTaskRefError,
  ManifestError,
  PackageIntegrityError,
  PackageRejectedError,
  RunnerProtocolError,
  SandboxUnavailableError,
  TaskFailedError,
  TaskNotFoundError,
  TaskTimeoutError,
  TydraError,
  UnknownTaskError,
} from './errors.js';
