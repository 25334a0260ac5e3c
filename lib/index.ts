/**
 * tydra's public API. Everything importable from `tydra` is exported here, by name; nothing
 * else is reachable (package.json `exports` allows no deep imports).
 *
 * Terms: a *package* is a folder with a `tydra.json`, stored by content as `name@sha1`; a *task*
 * is one entry of its manifest; a *TaskInstance* is one submitted run of a task (its id is the
 * job id in the `tasks` queue); a *master* schedules TaskInstances onto *nodes*; a node runs each
 * one in a fresh *sandbox* (Pydra's worker; in the code, "worker" means only BullMQ's `Worker`).
 */

// client/
export { Tydra } from './client/client.js';
export { TaskRun } from './client/task-run.js';
export type { TaskRunEvents } from './client/task-run.js';
export type { RunRow, RunsOptions } from './client/runs.js';
export type { RerunOptions } from './client/rerun.js';
export type { KeepFinished } from './client/retention.js';
export type { CancelResult, PackageVersionUse, SubmitOptions, TaskState, TaskStatus } from './client/types.js';
export { DEFAULT_MAX_TASK_LIMITS, DEFAULT_TASK_LIMITS } from './core/limits.js';
export type { TaskLimits } from './core/limits.js';
// master.ts, node.ts, dashboard.ts
export { Master } from './master/master.js';
export type { MasterState, PruneSummary } from './master/master.js';
export { TydraNode } from './node/node.js';
export type { NodeState } from './node/node.js';
export type { WarmPoolStats } from './node/warm-pool.js';
export { Dashboard } from './ops/dashboard.js';
export { NodeControl, type NodeControlOptions } from './ops/node-control.js';
export { TaskLogs, type TaskLogsOptions } from './ops/task-logs.js';
// dev-cluster.ts, redis-server.ts
export { startDevCluster } from './ops/dev-cluster.js';
export type { DevCluster, DevClusterOptions } from './ops/dev-cluster.js';
export { startRedisServer } from './ops/redis-server.js';
export type { RedisServer, RedisServerOptions } from './ops/redis-server.js';
// packages
export { packDirectory } from './packages/pack.js';
export type { PackedPackage } from './packages/pack.js';
export type { DeployResult, PackageVersion, PackageVersionInfo } from './packages/store.js';
export type { HealedHolder, PruneDecision, PruneOptions, PruneReport } from './packages/pruner.js';
export type {
  Manifest,
  ParallelTaskSpec,
  PhaseEntry,
  SequenceStep,
  SequenceTaskSpec,
  SimpleTaskSpec,
  TaskKind,
  TaskSpec,
} from './packages/manifest.js';
export { parseTaskRef } from './packages/task-ref.js';
export type { TaskRef } from './packages/task-ref.js';
export type { NodeInfo, NodePoolInfo } from './cluster/node-registry.js';
// namespaces: every key of one installation, under its hash tag `{NAME}` (README: Namespaces and Redis Cluster)
export { DEFAULT_NAMESPACE } from './core/namespace.js';
export { createKeys, Keyspace } from './redis/keys.js';
// options.ts, logger.ts
export type { TydraOptions } from './client/options.js';
export type { MasterOptions } from './master/options.js';
export type { NodeOptions } from './node/options.js';
export type { MetricsOptions } from './core/metrics-options.js';
export type { DashboardOptions, DashboardRole, DashboardUser } from './ops/dashboard-options.js';
export type { PackageLimits } from './packages/limits.js';
export { createLogger } from './core/logger.js';
export type { LogFormat, Logger, LoggerOptions } from './core/logger.js';
// errors.ts
export {
  CgroupError,
  IllegalStateError,
  InfrastructureError,
  InputSchemaError,
  LimitExceededError,
  NodeNotFoundError,
  NodeShutdownError,
  ParallelResultMissingError,
  TaskCancelledError,
  InvalidOptionError,
  InvalidTaskRefError,
  ManifestError,
  PackageIntegrityError,
  PackageRejectedError,
  RedisUnreachableError,
  SubmitNotReplicatedError,
  RunnerProtocolError,
  SandboxUnavailableError,
  SecretKeyError,
  SecretUnavailableError,
  UnknownSecretError,
  TaskFailedError,
  TaskUnrecoverableError,
  TaskNotFoundError,
  TaskTimeoutError,
  TydraError,
  UnknownTaskError,
} from './core/errors.js';
// queues/task-ending.ts, queues/progress.ts
export type { TaskEnding } from '../queues/task-ending.js';
export type { TaskProgress, WorkunitCounts } from '../queues/progress.js';
export type { ScheduleInfo, ScheduleSpec } from './client/schedules.js';
export type { SecretInfo } from './client/secrets.js';

// ---- deprecated below this line ----
/** @deprecated A task may throw this very message: use `instanceof TaskCancelledError` or the `cancelled` state. */
export { CANCELLED_MESSAGE } from './core/errors.js';
