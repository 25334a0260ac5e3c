/**
 * What a node measures (see `lib/core/metrics.ts`), bound to its id so each call site is one
 * line: queue wait, run and sandbox start times of simple tasks, package syncs and cache
 * lookups, workunit outcomes.
 */
import type { Job } from 'bullmq';

import type { TydraMetrics } from '../core/metrics.js';
import type { CacheObserver } from '../packages/cache/package-cache.js';
import type { HandoffBy } from './handoffs.js';

/** The labels a run is known by: package name and task (never the instance id or sha1). */
interface RunLabels {
  package: { name: string };
  task: string;
}

export interface NodeMetrics {
  /** Observes the wait of a node job taken for the first time (a retry or a wake-up is no wait in the queue). */
  queueWait(job: Job<Partial<RunLabels>>): void;
  /** Runs `run`, observing its duration under the outcome `outcomeOf` gives a failure (`completed` otherwise). */
  timeRun<T>(labels: RunLabels, run: () => Promise<T>, outcomeOf: (error: unknown) => string): Promise<T>;
  /** Observes a sandbox's start: a simple task's (`runTask`'s `onStarted`) or a work sandbox's. */
  sandboxStarted(seconds: number, sandbox: 'task' | 'work'): void;
  /** Counts one connection of a task to a declared endpoint (`network/task-network.ts`). */
  connection(outcome: 'opened' | 'refused' | 'failed'): void;
  /** Counts a TaskInstance the warm pool saw: `hit` when it claimed a pre-started sandbox. */
  warmClaim(hit: boolean): void;
  /** Counts a node job whose sandbox was let go, by what let it go (`handoffs.ts`). */
  handoff(by: HandoffBy): void;
  /** Counts one workunit by outcome. */
  workunit(labels: RunLabels, outcome: 'ok' | 'failed' | 'retried'): void;
  /** For the package cache. */
  cache: CacheObserver;
}

export function nodeMetrics(metrics: TydraMetrics, node: string): NodeMetrics {
  const runLabels = (labels: RunLabels) => ({ package: labels.package.name, task: labels.task, node });
  return {
    queueWait(job) {
      const { processedOn, timestamp } = job;
      // Job data is anyone's to write (it is checked later, in the run): read it with care.
      const data: Partial<RunLabels> = typeof job.data === 'object' && job.data !== null ? job.data : {};
      if (job.attemptsStarted !== 1 || processedOn === undefined || typeof data.task !== 'string') {
        return;
      }
      const name = data.package?.name;
      const labels = { package: typeof name === 'string' ? name : 'unknown', task: data.task, node };
      metrics.queueWaitSeconds.observe(labels, Math.max(0, processedOn - timestamp) / 1000);
    },
    async timeRun(labels, run, outcomeOf) {
      const end = metrics.runSeconds.startTimer(runLabels(labels));
      try {
        const result = await run();
        end({ outcome: 'completed' });
        return result;
      } catch (error) {
        end({ outcome: outcomeOf(error) });
        throw error;
      }
    },
    sandboxStarted(seconds, sandbox) {
      metrics.sandboxStartSeconds.observe({ node, sandbox }, seconds);
    },
    connection(outcome) {
      metrics.sandboxConnections.inc({ node, outcome });
    },
    warmClaim(hit) {
      metrics.warmPoolClaims.inc({ node, result: hit ? 'hit' : 'miss' });
    },
    handoff(by) {
      metrics.nodeJobHandoffs.inc({ node, by });
    },
    workunit(labels, outcome) {
      metrics.workunits.inc({ ...runLabels(labels), outcome });
    },
    cache: {
      synced(bytes, seconds) {
        metrics.packageSyncBytes.inc({ node }, bytes);
        metrics.packageSyncSeconds.observe({ node }, seconds);
      },
      looked(hit) {
        metrics.packageCacheLookups.inc({ node, result: hit ? 'hit' : 'miss' });
      },
    },
  };
}
