/**
 * Per-TaskInstance resource limits: what each one means, their defaults and node-wide maxima,
 * how a submission, a task and its package override the node's defaults, and how a limit is
 * named in an error message.
 *
 * Precedence, highest first: the submission, the task in `tydra.json`, the package in
 * `tydra.json`, the node's defaults. Whatever wins is then capped at the node's maximum: a task
 * can ask for less than the node allows, never more.
 */
import { z } from 'zod';

import {
  type CompiledTaskLimits,
  formatBytes,
  formatDuration,
  KiB,
  LIMIT_NAMES,
  type LimitName,
  MiB,
  type TaskLimits,
} from './limit-values.js';

export * from './limit-values.js';

const positiveInt = z.number().int().positive();

/** Zod schema of a partial limits object (manifest, submission, node options). */
export const taskLimitsSchema = z.strictObject({
  timeoutMs: positiveInt.optional(),
  cpuMs: positiveInt.optional(),
  memoryBytes: positiveInt.min(8 * MiB).optional(),
  pids: positiveInt.min(4).optional(),
  openFiles: positiveInt.min(16).optional(),
  fileSizeBytes: positiveInt.optional(),
  scratchBytes: positiveInt.min(MiB).optional(),
  outputBytes: positiveInt.min(KiB).optional(),
});

/** One limit lowered to the node's maximum. */
export interface LimitClamp {
  name: LimitName;
  asked: number;
  allowed: number;
}

/** The limits that apply to one TaskInstance, and which requests were lowered. */
export function resolveLimits(
  layers: { submission?: TaskLimits; task?: TaskLimits; package?: TaskLimits },
  defaults: CompiledTaskLimits,
  maxima: CompiledTaskLimits,
): { limits: CompiledTaskLimits; clamped: LimitClamp[] } {
  const limits = { ...defaults };
  const clamped: LimitClamp[] = [];
  for (const name of LIMIT_NAMES) {
    const asked = layers.submission?.[name] ?? layers.task?.[name] ?? layers.package?.[name] ?? defaults[name];
    const allowed = Math.min(asked, maxima[name]);
    if (allowed < asked) {
      clamped.push({ name, asked, allowed });
    }
    limits[name] = allowed;
  }
  return { limits, clamped };
}

/** How a limit reads in messages: `memory limit (512 MiB)`. */
export function describeLimit(name: LimitName, value: number): string {
  switch (name) {
    case 'timeoutMs':
      return `wall-clock limit (${formatDuration(value)})`;
    case 'cpuMs':
      return `CPU time limit (${formatDuration(value)})`;
    case 'memoryBytes':
      return `memory limit (${formatBytes(value)})`;
    case 'pids':
      return `process limit (${value} processes and threads)`;
    case 'openFiles':
      return `open files limit (${value})`;
    case 'fileSizeBytes':
      return `file size limit (${formatBytes(value)})`;
    case 'scratchBytes':
      return `scratch space limit (${formatBytes(value)})`;
    case 'outputBytes':
      return `output limit (${formatBytes(value)} per stream)`;
  }
}
