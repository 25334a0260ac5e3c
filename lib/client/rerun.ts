/**
 * `Tydra.rerun(id)`: what a new TaskInstance takes from the one it re-runs. The same input and
 * submit options as recorded in its job data, pinned to the same version unless `latest`. Not
 * copied: its idempotency key (a re-run is a new TaskInstance on purpose) and its delay (`at` is
 * in the past by now); nor what the run itself recorded (dispatch, lost nodes, ending).
 */
import { z } from 'zod';

import type { TaskInstanceData } from '../../queues/tasks.js';
import { UnknownTaskError } from '../core/errors.js';
import { parseOptions } from '../core/validate.js';
import type { SubmitOptions } from './types.js';

/** Options of {@link Tydra.rerun}. */
export interface RerunOptions {
  /** Run the latest version of `name/task` instead of the version the re-run one ran. @defaultValue false */
  latest?: boolean;
}

const rerunOptionsSchema = z.strictObject({ latest: z.boolean().optional() });

/** The submit that re-runs a TaskInstance with `data`; throws `InvalidOptionError` for bad `options`. */
export function rerunSubmission(
  data: TaskInstanceData,
  options: RerunOptions,
): { ref: string; input: unknown; options: SubmitOptions } {
  const checked = parseOptions(rerunOptionsSchema, options, 'rerun option');
  const ref = checked.latest ? `${data.package.name}/${data.task}` : data.ref;
  const submit: SubmitOptions = {
    attempts: data.attempts,
    ...(data.timeoutMs !== undefined ? { timeoutMs: data.timeoutMs } : {}),
    ...(data.limits !== undefined ? { limits: data.limits } : {}),
    ...(data.retryOnLimit ? { retryOnLimit: true } : {}),
    ...(data.maxFailedWorkunits !== undefined ? { maxFailedWorkunits: data.maxFailedWorkunits } : {}),
    ...(data.priority !== undefined ? { priority: data.priority } : {}),
    ...(data.backoff !== undefined ? { backoff: data.backoff } : {}),
    ...(data.env !== undefined ? { env: data.env } : {}),
    ...(data.secrets !== undefined ? { secrets: data.secrets } : {}),
  };
  return { ref, input: data.input, options: submit };
}

/**
 * The error of a pinned re-run whose version is gone (pruned) or out of use (undeployed): the
 * store's reason, and the way out.
 */
export function pinnedVersionGone(id: string, data: TaskInstanceData, cause: Error): UnknownTaskError {
  const { name, sha1 } = data.package;
  return new UnknownTaskError(
    `Expected the version TaskInstance ${id} ran, ${name}@${sha1.slice(0, 12)}, to be deployed to re-run it on it, ` +
      `got: ${cause.message}. Re-run it with --latest (client: rerun(id, { latest: true })) to run the latest version of ${name}/${data.task}`,
    { cause },
  );
}
