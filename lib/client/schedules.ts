/**
 * Schedules: a TaskInstance of `ref` on a cron pattern or every so often, made by the masters (see
 * `queues/schedules.ts` and `lib/master/schedule-firing.ts`). A schedule is a BullMQ job scheduler
 * named after it; adding one with a name in use replaces it.
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';

import { FIRE_JOB, FIRE_JOB_OPTIONS, type FireJobData, SCHEDULE_NAME_PATTERN } from '../../queues/schedules.js';
import { parseDuration } from '../core/duration.js';
import { InvalidOptionError, UnknownTaskError } from '../core/errors.js';
import { secretMappingSchema } from '../core/secret-box.js';
import { taskEnvSchema } from '../core/task-env.js';
import { parseOptions } from '../core/validate.js';
import { declaredSecrets } from '../packages/manifest.js';
import type { PackageStore } from '../packages/store.js';
import { parseTaskRef } from '../packages/task-ref.js';
import { checkTaskInput } from '../packages/task-schemas.js';
import type { Keyspace } from '../redis/keys.js';
import { submissionSecrets } from './secrets.js';

/** The shortest period of an `every` schedule. */
export const MIN_EVERY_MS = 1000;

/** When a schedule fires: exactly one of `cron` (with an optional time zone) or `every`. */
export interface ScheduleSpec {
  /** A cron pattern, `*\/5 * * * *` (five fields) or with seconds first (six). */
  cron?: string;
  /** An IANA time zone for `cron`, e.g. `Europe/Berlin`. @defaultValue the master's */
  tz?: string;
  /** A period in ms (at least 1,000) or as a duration, `30s`, `5m`. */
  every?: number | string;
  /** The input of each TaskInstance. @defaultValue null */
  input?: unknown;
  /** Environment variables of each TaskInstance (as the `env` submit option). @defaultValue none */
  env?: Record<string, string>;
  /**
   * Secrets of each TaskInstance: environment variable → stored secret name (as the `secrets`
   * submit option). Each must be stored when the schedule is added, and again at each firing.
   * @defaultValue the task's declared secrets only
   */
  secrets?: Record<string, string>;
}

/** A schedule as `listSchedules` returns it. */
export interface ScheduleInfo {
  name: string;
  ref: string;
  cron: string | undefined;
  tz: string | undefined;
  every: number | undefined;
  /** When it fires next (ms), as BullMQ has it. */
  next: number | undefined;
  input: unknown;
  /** Environment variables of each firing (absent: none). */
  env?: Record<string, string>;
  /** Secret mapping of each firing (names only; absent: the task's declared secrets). */
  secrets?: Record<string, string>;
}

const specSchema = z
  .strictObject({
    cron: z.string().min(1).max(256).optional(),
    tz: z
      .string()
      .min(1)
      .max(64)
      .refine((tz) => isTimeZone(tz), 'an IANA time zone such as Europe/Berlin')
      .optional(),
    every: z.union([z.number().int().min(MIN_EVERY_MS), z.string().min(1)]).optional(),
    input: z.unknown().optional(),
    env: taskEnvSchema.optional(),
    secrets: secretMappingSchema.optional(),
  })
  .refine((spec) => (spec.cron === undefined) !== (spec.every === undefined), {
    message: 'exactly one of `cron` or `every`',
  })
  .refine((spec) => spec.tz === undefined || spec.cron !== undefined, { message: '`tz` only with `cron`' });

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export interface ScheduleContext {
  queue: () => Queue<FireJobData>;
  /** Where `addSchedule` checks that the secrets it maps are stored. */
  redis: Redis;
  keys: Keyspace;
  store: PackageStore;
  serialiseInput: (input: unknown) => unknown;
}

/** Adds (or replaces) schedule `name`; throws for a bad name, spec, reference or input. */
export async function addSchedule(
  context: ScheduleContext,
  name: string,
  ref: string,
  spec: ScheduleSpec,
): Promise<ScheduleInfo> {
  if (!SCHEDULE_NAME_PATTERN.test(name)) {
    throw new InvalidOptionError(
      `Expected a schedule name matching ${SCHEDULE_NAME_PATTERN}, got ${JSON.stringify(name)}`,
    );
  }
  const checked = parseOptions(specSchema, spec, 'schedule option');
  const every =
    typeof checked.every === 'string' ? parseDuration(checked.every, "the schedule's `every`") : checked.every;
  if (every !== undefined && every < MIN_EVERY_MS) {
    throw new InvalidOptionError(
      `Expected the schedule's \`every\` to be at least ${MIN_EVERY_MS} ms, got ${every} ms`,
    );
  }
  // Checked now against the version it would run today, so a typo fails here, not at 3 a.m.
  const parsed = parseTaskRef(ref);
  const version = await context.store.resolve(parsed.name, parsed.version);
  const task = version.manifest.tasks[parsed.task];
  if (task === undefined) {
    throw new UnknownTaskError(
      `Expected package ${version.name}@${version.sha1.slice(0, 12)} to define task ${parsed.task}`,
    );
  }
  const input = context.serialiseInput(checked.input ?? null);
  checkTaskInput(parsed.task, task, input);
  // A secret missing now fails the add, naming it (each firing checks again).
  await submissionSecrets(
    context.redis,
    context.keys,
    parsed.task,
    declaredSecrets(version.manifest, parsed.task),
    checked.secrets,
  );
  const extra = {
    ...(checked.env !== undefined && Object.keys(checked.env).length > 0 ? { env: checked.env } : {}),
    ...(checked.secrets !== undefined && Object.keys(checked.secrets).length > 0 ? { secrets: checked.secrets } : {}),
  };
  const repeat = every !== undefined ? { every } : { pattern: checked.cron, ...(checked.tz ? { tz: checked.tz } : {}) };
  try {
    await context.queue().upsertJobScheduler(name, repeat, {
      name: FIRE_JOB,
      data: { schedule: name, ref, input, ...extra },
      opts: FIRE_JOB_OPTIONS,
    });
  } catch (error) {
    throw new InvalidOptionError(
      `Expected the schedule's \`cron\` to be a cron pattern such as "*/5 * * * *", got ${JSON.stringify(checked.cron)}: ${(error as Error).message}`,
    );
  }
  const added = (await listSchedules(context)).find((schedule) => schedule.name === name);
  return added ?? { name, ref, cron: checked.cron, tz: checked.tz, every, next: undefined, input, ...extra };
}

/** Every schedule, by name. */
export async function listSchedules(context: Pick<ScheduleContext, 'queue'>): Promise<ScheduleInfo[]> {
  const schedulers = await context.queue().getJobSchedulers(0, -1, true);
  return schedulers
    .map((scheduler) => {
      const data = scheduler.template?.data;
      return {
        name: scheduler.key,
        ref: data?.ref ?? '?',
        cron: scheduler.pattern ?? undefined,
        tz: scheduler.tz ?? undefined,
        every: scheduler.every ?? undefined,
        next: scheduler.next ?? undefined,
        input: data?.input ?? null,
        ...(data?.env !== undefined ? { env: data.env } : {}),
        ...(data?.secrets !== undefined ? { secrets: data.secrets } : {}),
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Removes schedule `name`; false when there was none. TaskInstances it made are not touched. */
export async function removeSchedule(context: Pick<ScheduleContext, 'queue'>, name: string): Promise<boolean> {
  return context.queue().removeJobScheduler(name);
}
