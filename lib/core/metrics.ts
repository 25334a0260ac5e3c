/**
 * tydra's Prometheus metrics (prom-client), one set per `Registry`. Each role takes a registry
 * (`metrics` option; by default a private one per instance, so roles in one process, as in the
 * tests, count apart) and asks {@link tydraMetrics} for the metric objects: they are created once
 * per registry, so roles that share one (`tydra dev`: master, nodes and dashboard) share the
 * counters instead of registering a metric twice, which prom-client refuses.
 *
 * Labels stay low-cardinality: package name (never its sha1 or an instance id), task name, node
 * id, and a state or outcome from a short fixed list. Every metric is listed in the README
 * ("Metrics").
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Where the count of live nodes comes from at scrape time (a role's node registry). */
export type AliveNodesSource = () => Promise<number>;

/** The metric objects of one registry. */
export interface TydraMetrics {
  /** TaskInstances that reached a final state (master), by `state`: completed or the ending's kind. */
  taskInstances: Counter<'package' | 'task' | 'state'>;
  /** Seconds a simple task's sandbox ran, from launch to its ending (node), by `outcome`. */
  runSeconds: Histogram<'package' | 'task' | 'node' | 'outcome'>;
  /** Seconds a node job waited in its node's queue before the node took it (node, first attempt). */
  queueWaitSeconds: Histogram<'package' | 'task' | 'node'>;
  /** Seconds from launching a sandbox until it runs in its cgroup (node), by `sandbox`: task or work. */
  sandboxStartSeconds: Histogram<'node' | 'sandbox'>;
  /** Connections of tasks to their declared endpoints, by outcome (node). */
  sandboxConnections: Counter<'node' | 'outcome'>;
  /** Bytes of package tarballs downloaded from Redis into a node's cache. */
  packageSyncBytes: Counter<'node'>;
  /** Seconds to download, extract and check one package version (node). */
  packageSyncSeconds: Histogram<'node'>;
  /** Package cache lookups by `result`: `hit` (on disk) or `miss` (downloaded). */
  packageCacheLookups: Counter<'node' | 'result'>;
  /** Package versions the prune job deleted from Redis (master). */
  pruneRemovals: Counter<'package'>;
  /** Simple JavaScript TaskInstances by `result`: `hit` (a pre-started sandbox) or `miss` (a cold start) (node). */
  warmPoolClaims: Counter<'node' | 'result'>;
  /** Node jobs by what let their sandbox exit (`lib/node/handoffs.ts`): `event`, `grace` or `close` (node). */
  nodeJobHandoffs: Counter<'node' | 'by'>;
  /** Workunits of parallel TaskInstances by `outcome`: ok, failed (for good) or retried (node). */
  workunits: Counter<'package' | 'task' | 'node' | 'outcome'>;
  /**
   * Adds a source for `tydra_nodes_alive` (nodes alive right now, read from the node registry at
   * scrape time: master, dashboard); returns its remover (call it on close). The gauge is
   * registered with the first source, so a registry no master or dashboard reads into (a lone
   * node's) has none, rather than a 0 that reads as "no node alive". With several sources on one
   * registry (`tydra dev`) the first answers: they all read the same registry; with none left, NaN.
   */
  watchAliveNodes(source: AliveNodesSource): () => void;
}

const memo = new WeakMap<Registry, TydraMetrics>();

const RUN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
const WAIT_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const START_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const SYNC_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The metric objects of `registry`, registered on first use. */
export function tydraMetrics(registry: Registry): TydraMetrics {
  let metrics = memo.get(registry);
  if (metrics === undefined) {
    metrics = createMetrics(registry);
    memo.set(registry, metrics);
  }
  return metrics;
}

function createMetrics(registry: Registry): TydraMetrics {
  const registers = [registry];
  return { ...clusterMetrics(registers), ...runMetrics(registers), ...packageMetrics(registers) };
}

/** What the master and the dashboard see of the whole cluster. */
function clusterMetrics(registers: Registry[]) {
  const sources: AliveNodesSource[] = [];
  let nodesAlive: Gauge | undefined;
  return {
    taskInstances: new Counter({
      name: 'tydra_task_instances_total',
      help: 'TaskInstances that reached a final state, by state (completed, failed, cancelled, timeout, limit, infrastructure, rejected)',
      labelNames: ['package', 'task', 'state'],
      registers,
    }),
    watchAliveNodes(source: AliveNodesSource) {
      nodesAlive ??= new Gauge({
        name: 'tydra_nodes_alive',
        help: 'Nodes alive (heard from within three heartbeat periods), read from the node registry at scrape time',
        registers,
        async collect() {
          // A failed read (Redis down) reads as NaN (unknown) rather than failing the whole scrape.
          this.set((await sources[0]?.().catch(() => Number.NaN)) ?? Number.NaN);
        },
      });
      sources.push(source);
      return () => {
        const index = sources.indexOf(source);
        if (index >= 0) {
          sources.splice(index, 1);
        }
      };
    },
  };
}

/** What a node measures of its runs. */
function runMetrics(registers: Registry[]) {
  return {
    runSeconds: new Histogram({
      name: 'tydra_run_duration_seconds',
      help: "Seconds a simple task's sandbox ran, from launch to its ending, by outcome",
      labelNames: ['package', 'task', 'node', 'outcome'],
      buckets: RUN_BUCKETS,
      registers,
    }),
    queueWaitSeconds: new Histogram({
      name: 'tydra_queue_wait_seconds',
      help: "Seconds a node job waited in its node's queue before the node took it (first attempt)",
      labelNames: ['package', 'task', 'node'],
      buckets: WAIT_BUCKETS,
      registers,
    }),
    sandboxStartSeconds: new Histogram({
      name: 'tydra_sandbox_start_seconds',
      help: "Seconds from launching a sandbox until it runs in its cgroup, by sandbox: task (a simple task's) or work (a parallel task's work sandbox)",
      labelNames: ['node', 'sandbox'],
      buckets: START_BUCKETS,
      registers,
    }),
    sandboxConnections: new Counter({
      name: 'tydra_sandbox_connections_total',
      help: "Connections tasks made to their declared endpoints, by outcome: opened (forwarded), refused (not allowed by the node's --allow-connect) or failed (the endpoint could not be reached)",
      labelNames: ['node', 'outcome'],
      registers,
    }),
    workunits: new Counter({
      name: 'tydra_workunits_total',
      help: 'Workunits of parallel TaskInstances by outcome: ok, failed (for good) or retried',
      labelNames: ['package', 'task', 'node', 'outcome'],
      registers,
    }),
  };
}

/** Package syncs, cache lookups (node) and prune removals (master). */
function packageMetrics(registers: Registry[]) {
  return {
    packageSyncBytes: new Counter({
      name: 'tydra_package_sync_bytes_total',
      help: "Bytes of package tarballs downloaded from Redis into a node's cache",
      labelNames: ['node'],
      registers,
    }),
    packageSyncSeconds: new Histogram({
      name: 'tydra_package_sync_seconds',
      help: 'Seconds to download, extract and check one package version',
      labelNames: ['node'],
      buckets: SYNC_BUCKETS,
      registers,
    }),
    packageCacheLookups: new Counter({
      name: 'tydra_package_cache_lookups_total',
      help: 'Package cache lookups by result: hit (the version was on disk) or miss (it was downloaded)',
      labelNames: ['node', 'result'],
      registers,
    }),
    pruneRemovals: new Counter({
      name: 'tydra_prune_removed_versions_total',
      help: 'Package versions the prune job deleted from Redis',
      labelNames: ['package'],
      registers,
    }),
    warmPoolClaims: new Counter({
      name: 'tydra_warm_pool_claims_total',
      help: 'Simple JavaScript TaskInstances by result: hit (a pre-started sandbox) or miss (a cold start)',
      labelNames: ['node', 'result'],
      registers,
    }),
    nodeJobHandoffs: new Counter({
      name: 'tydra_node_job_handoffs_total',
      help: 'Node jobs by what let their sandbox exit: event (their ending recorded in Redis), grace (not recorded within 1 s of the end of their run), close (the node closed)',
      labelNames: ['node', 'by'],
      registers,
    }),
  };
}
