/**
 * The package prune job: every master upserts the `maintenance` queue's job scheduler (an
 * idempotent upsert, so masters starting together neither duplicate nor lose it) and runs prune
 * passes, one at a time per master. Each pass is a normal job: its log lists what changed and
 * its result summarises the pass, both visible in Bull Board.
 */
import { type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import {
  MAINTENANCE_JOB_OPTIONS,
  MAINTENANCE_QUEUE,
  PRUNE_JOB,
  PRUNE_SCHEDULER,
  type PruneJobData,
} from '../../queues/maintenance.js';
import type { Logger } from '../core/logger.js';
import type { TydraMetrics } from '../core/metrics.js';
import { type PruneDecision, type PruneReport, prunePackages } from '../packages/pruner.js';
import { logErrors } from '../redis/connection.js';
import type { Keyspace } from '../redis/keys.js';

/** Lines of one prune job's log; the summary line always follows. */
const MAX_PRUNE_LOG_LINES = 500;

/** What a prune job returns (shown in Bull Board). */
export interface PruneSummary {
  removed: string[];
  healed: number;
  kept: Record<string, number>;
  packages: number;
  versions: number;
  ms: number;
}

export interface PruneJobOptions {
  redis: Redis;
  keys: Keyspace;
  logger: Logger;
  everyMs: number;
  graceMs: number;
  /** Where removed versions are counted (`tydra_prune_removed_versions_total`). */
  metrics?: TydraMetrics;
}

/** The scheduler and the Worker that runs prune passes for one master. */
export class PruneJob {
  private queue: Queue<PruneJobData> | undefined;
  private worker: Worker<PruneJobData, PruneSummary> | undefined;

  constructor(private readonly options: PruneJobOptions) {}

  async start(): Promise<void> {
    const { redis, logger } = this.options;
    this.queue = new Queue<PruneJobData>(MAINTENANCE_QUEUE, {
      connection: redis,
      prefix: this.options.keys.bullPrefix,
      defaultJobOptions: MAINTENANCE_JOB_OPTIONS,
    });
    logErrors(this.queue, (error) => logger.warn({ err: error.message }, 'maintenance queue error'));
    await this.queue.upsertJobScheduler(
      PRUNE_SCHEDULER,
      { every: this.options.everyMs },
      { name: PRUNE_JOB, data: { graceMs: this.options.graceMs }, opts: MAINTENANCE_JOB_OPTIONS },
    );
    this.worker = new Worker<PruneJobData, PruneSummary>(MAINTENANCE_QUEUE, (job) => this.prune(job), {
      connection: redis,
      prefix: this.options.keys.bullPrefix,
      concurrency: 1,
      name: 'master',
    });
    logErrors(this.worker, (error) => logger.error({ err: error.message }, 'maintenance worker error'));
    await this.worker.waitUntilReady();
  }

  /** Closes the Worker (waiting for a running pass) and then the queue. */
  async close(): Promise<void> {
    await Promise.allSettled([this.worker?.close()]);
    await Promise.allSettled([this.queue?.close()]);
  }

  /** The Worker and the queue, for a forced stop to drop their connections. */
  connectionOwners(): Array<Worker | Queue | undefined> {
    return [this.worker, this.queue];
  }

  private async prune(job: Job<PruneJobData, PruneSummary>): Promise<PruneSummary> {
    if (job.name !== PRUNE_JOB) {
      throw new UnrecoverableError(`Expected a maintenance job named ${PRUNE_JOB}, got ${job.name}`);
    }
    const graceMs =
      typeof job.data.graceMs === 'number' && job.data.graceMs >= 0 ? job.data.graceMs : this.options.graceMs;
    const report = await prunePackages(this.options.redis, this.options.keys, { graceMs });
    for (const decision of report.dryRun ? [] : report.removed) {
      this.options.metrics?.pruneRemovals.inc({ package: decision.name });
    }
    // Kept versions are the common case: the log lists only what changed, plus a summary.
    for (const line of changes(report).slice(0, MAX_PRUNE_LOG_LINES)) {
      await job.log(line);
    }
    const summary = summarize(report);
    await job.log(
      `pass over ${report.packages} package(s), ${report.versions} version(s) in ${report.ms} ms: removed ${report.removed.length}, healed ${report.healed.length}, kept ${report.kept.length} (${
        Object.entries(summary.kept)
          .map(([why, count]) => `${why} ${count}`)
          .join(', ') || 'none'
      })`,
    );
    if (report.removed.length > 0 || report.healed.length > 0) {
      this.options.logger.info({ removed: report.removed.length, healed: report.healed.length }, 'prune pass');
    }
    return summary;
  }
}

/** One log line per change of a pass: healed references, then removed versions. */
export function changes(report: PruneReport): string[] {
  const verb = (live: string, dry: string): string => (report.dryRun ? dry : live);
  const version = (decision: PruneDecision): string => `${decision.name}@${decision.sha1}`;
  return [
    ...report.healed.map(
      (holder) =>
        `${verb('healed', 'would heal')} a reference of ${holder.instanceId} on ${holder.name}@${holder.sha1} (its job is ${holder.why})`,
    ),
    ...report.removed.map((decision) => `${verb('removed', 'would remove')} ${version(decision)}: ${decision.reason}`),
  ];
}

function summarize(report: PruneReport): PruneSummary {
  const kept: Record<string, number> = {};
  for (const decision of report.kept) {
    kept[decision.verdict] = (kept[decision.verdict] ?? 0) + 1;
  }
  return {
    removed: report.removed.slice(0, 100).map((decision) => `${decision.name}@${decision.sha1}`),
    healed: report.healed.length,
    kept,
    packages: report.packages,
    versions: report.versions,
    ms: report.ms,
  };
}
