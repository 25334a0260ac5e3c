/**
 * A simple task's sandbox on a node: a pooled one when the node's warm pool applies (a
 * JavaScript module, under bwrap, with no start-up variables in its `env` and no network), else a
 * cold one.
 * Command tasks and the phases of parallel tasks always start cold.
 */
import { runTask, type RunTaskOptions } from '../../sandbox/launcher/run-task.js';
import { isWarmEligible } from '../../sandbox/launcher/warm-sandbox.js';
import type { WarmPool } from './warm-pool.js';

/** Runs the TaskInstance `options` describes, of the package version `version`. */
export function runSimpleTask(
  pool: WarmPool | undefined,
  options: RunTaskOptions,
  version: { name: string; sha1: string },
): Promise<unknown> {
  const module = options.task.module;
  if (pool === undefined || !pool.enabled || module === undefined || options.bwrap === undefined) {
    return runTask(options);
  }
  // A task with a network gets its mounts and forwarder when bwrap starts: never pre-started.
  if (!isWarmEligible(options.env) || (options.network?.endpoints.length ?? 0) > 0) {
    return runTask(options);
  }
  const { instanceId, attempt, input, env, secrets, signal, onLog, onProgress, startAfter, exitAfter } = options;
  return pool.run(
    { package: version, packageDir: options.packageDir, module, limits: options.limits },
    { instanceId, attempt, input, env, secrets, signal, onLog, onProgress, startAfter, exitAfter },
    (started) =>
      runTask({
        ...options,
        onStarted: (seconds) => {
          options.onStarted?.(seconds);
          started();
        },
      }),
  );
}
