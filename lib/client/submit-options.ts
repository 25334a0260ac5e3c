/**
 * The per-submission options ({@link SubmitOptions}), validated once at `submit` and compiled into
 * what the TaskInstance job carries (its data) and how it is added (BullMQ job options).
 */
import type { JobsOptions } from 'bullmq';
import { z } from 'zod';

import { MAX_PRIORITY, taskBackoffSchema, type TaskInstanceData } from '../../queues/tasks.js';
import { InvalidOptionError } from '../core/errors.js';
import { taskLimitsSchema } from '../core/limits.js';
import { secretMappingSchema } from '../core/secret-box.js';
import { isReservedEnvName, taskEnvSchema } from '../core/task-env.js';
import { parseOptions } from '../core/validate.js';
import type { SubmitOptions } from './types.js';

/** Longest delay a submission may ask for: a year. */
const MAX_DELAY_MS = 365 * 24 * 3600 * 1000;

export const submitOptionsSchema = z.strictObject({
  timeoutMs: z.number().int().positive('a positive integer').optional(),
  attempts: z.number().int().positive('a positive integer').max(100).optional(),
  limits: taskLimitsSchema.optional(),
  retryOnLimit: z.boolean().optional(),
  maxFailedWorkunits: z.number().int().min(0, 'an integer >= 0').optional(),
  priority: z
    .number()
    .int(`an integer from 1 (highest) to ${MAX_PRIORITY}`)
    .min(1, `an integer from 1 (highest) to ${MAX_PRIORITY}`)
    .max(MAX_PRIORITY, `an integer from 1 (highest) to ${MAX_PRIORITY}`)
    .optional(),
  delayMs: z.number().int('an integer number of ms').min(0, 'an integer >= 0').max(MAX_DELAY_MS).optional(),
  at: z
    .union(
      [
        z.date(),
        z.iso.datetime({ offset: true, message: 'a Date or an ISO 8601 date-time string with Z or an offset' }),
      ],
      { message: 'a Date or an ISO 8601 date-time string with Z or an offset' },
    )
    .optional(),
  key: z
    .string()
    .min(1, 'a string of 1 to 256 characters')
    .max(256, 'a string of 1 to 256 characters')
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'a string without control characters')
    .optional(),
  backoff: taskBackoffSchema.optional(),
  env: z.record(z.string(), z.unknown()).optional(),
  secrets: secretMappingSchema.optional(),
});
export type CheckedSubmitOptions = z.output<typeof submitOptionsSchema>;

/** Parses the options, or throws an `InvalidOptionError` naming the option at fault. */
export function checkSubmitOptions(options: SubmitOptions): CheckedSubmitOptions {
  const checked = parseOptions(submitOptionsSchema, options, 'submit option');
  if (checked.delayMs !== undefined && checked.at !== undefined) {
    throw new InvalidOptionError('Expected either the `delayMs` or the `at` submit option, got both');
  }
  if (checked.env !== undefined) {
    checkEnv(checked.env);
  }
  return checked;
}

/**
 * The env rules of `taskEnvSchema`, with messages that name the variable but never echo its
 * value (a value may be a connection string with a password in it).
 */
function checkEnv(env: Record<string, unknown>): void {
  const result = taskEnvSchema.safeParse(env);
  if (result.success) {
    return;
  }
  const issue = result.error.issues[0];
  const name = issue?.path[0];
  if (name === undefined) {
    throw new InvalidOptionError(`Expected the \`env\` submit option to hold ${issue?.message ?? 'valid variables'}`);
  }
  const value = env[String(name)];
  const got =
    typeof value !== 'string'
      ? `a ${value === null ? 'null' : typeof value}`
      : !/^[A-Z][A-Z0-9_]{0,63}$/.test(String(name)) || isReservedEnvName(String(name))
        ? `the name \`${String(name)}\``
        : `a string of ${Buffer.byteLength(value)} bytes (not shown)`;
  const expected = typeof value !== 'string' ? 'a string' : (issue?.message ?? 'valid');
  throw new InvalidOptionError(`Expected the \`env.${String(name)}\` submit option to be ${expected}, got ${got}`);
}

/** When a delayed submission may start, or undefined to start at once. Throws for an `at` in the past. */
export function runAtOf(checked: CheckedSubmitOptions, now: number): number | undefined {
  if (checked.delayMs !== undefined) {
    return checked.delayMs > 0 ? now + checked.delayMs : undefined;
  }
  if (checked.at === undefined) {
    return undefined;
  }
  const at = new Date(checked.at).getTime();
  if (Number.isNaN(at) || at <= now) {
    throw new InvalidOptionError(
      `Expected the \`at\` submit option to be in the future, got ${new Date(at).toISOString()} (now is ${new Date(now).toISOString()})`,
    );
  }
  if (at - now > MAX_DELAY_MS) {
    throw new InvalidOptionError(
      `Expected the \`at\` submit option to be within a year, got ${new Date(at).toISOString()}`,
    );
  }
  return at;
}

/** The TaskInstance data the scheduling options add. */
export function scheduleData(
  checked: CheckedSubmitOptions,
  runAt: number | undefined,
): Pick<TaskInstanceData, 'priority' | 'runAt' | 'backoff' | 'env' | 'key'> {
  return {
    ...(checked.priority !== undefined ? { priority: checked.priority } : {}),
    ...(runAt !== undefined ? { runAt } : {}),
    ...(checked.backoff !== undefined ? { backoff: checked.backoff } : {}),
    ...(checked.env !== undefined && Object.keys(checked.env).length > 0
      ? { env: checked.env as Record<string, string> }
      : {}),
    ...(checked.key !== undefined ? { key: checked.key } : {}),
  };
}

/** BullMQ options of the TaskInstance job: its priority and delay. */
export function scheduleJobOptions(data: Pick<TaskInstanceData, 'priority' | 'runAt'>, now: number): JobsOptions {
  return {
    ...(data.priority !== undefined ? { priority: data.priority } : {}),
    ...(data.runAt !== undefined ? { delay: Math.max(0, data.runAt - now) } : {}),
  };
}
