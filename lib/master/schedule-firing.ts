/**
 * Turns each firing of a schedule (a `fire` job in `schedules`, made by a BullMQ job scheduler) into
 * a normal TaskInstance: the reference resolved now (the latest version unless pinned), the input
 * checked against the task's schema, a package reference taken, the job added to `tasks` with the
 * schedule's name in its data. The TaskInstance's id is derived from the firing's job id, so a
 * firing run twice (its master died after the add) adds nothing twice: the second add of the same
 * job id is a no-op, and the reference is already held by that id.
 */
import { createHash } from 'node:crypto';

import { type Job, type Queue, UnrecoverableError, Worker } from 'bullmq';
import type { Redis } from 'ioredis';

import { FIRE_JOB, type FireJobData, fireJobSchema, SCHEDULES_QUEUE } from '../../queues/schedules.js';
import { TASK_INSTANCE_JOB, TASKS_JOB_OPTIONS, type TaskInstanceData } from '../../queues/tasks.js';
import { InputSchemaError, UnknownSecretError, UnknownTaskError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { type SecretMapping, secretMappingOf } from '../core/secret-box.js';
import { declaredSecrets } from '../packages/manifest.js';
import type { PackageStore } from '../packages/store.js';
import { formatTaskRef, parseTaskRef } from '../packages/task-ref.js';
import { checkTaskInput } from '../packages/task-schemas.js';
import { logErrors } from '../redis/connection.js';
import type { Keyspace } from '../redis/keys.js';
import { missingSecrets } from '../redis/secret-commands.js';

export interface ScheduleFiringDeps {
  redis: Redis;
  keys: Keyspace;
  store: PackageStore;
  tasksQueue: Queue<TaskInstanceData>;
  logger: Logger;
}

/** What a firing's job returns (shown in Bull Board). */
export interface FiringResult {
  instanceId: string;
  ref: string;
}

export class ScheduleFiring {
  private worker: Worker<FireJobData, FiringResult> | undefined;

  constructor(private readonly deps: ScheduleFiringDeps) {}

  async start(): Promise<void> {
    this.worker = new Worker<FireJobData, FiringResult>(SCHEDULES_QUEUE, (job) => this.fire(job), {
      connection: this.deps.redis,
      prefix: this.deps.keys.bullPrefix,
      concurrency: 4,
      name: 'master',
    });
    logErrors(this.worker, (error) => this.deps.logger.error({ err: error.message }, 'schedules worker error'));
    await this.worker.waitUntilReady();
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.worker?.close()]);
  }

  connectionOwners(): Array<Worker | undefined> {
    return [this.worker];
  }

  private async fire(job: Job<FireJobData, FiringResult>): Promise<FiringResult> {
    const parsedJob = fireJobSchema.safeParse(job.data);
    if (job.name !== FIRE_JOB || !parsedJob.success) {
      throw new UnrecoverableError(
        `Expected a ${FIRE_JOB} job {schedule, ref, input}, got ${job.name} with other data`,
      );
    }
    const { schedule } = parsedJob.data;
    try {
      const data = await this.instanceData(parsedJob.data);
      const instanceId = firingInstanceId(job);
      await this.deps.store.takeRef(data.package.name, data.package.sha1, instanceId, { alreadyHeld: true });
      try {
        await this.deps.tasksQueue.add(TASK_INSTANCE_JOB, data, { ...TASKS_JOB_OPTIONS, jobId: instanceId });
      } catch (error) {
        await this.deps.store.releaseRef(instanceId, data.package).catch(() => undefined);
        throw error;
      }
      await job.log(`TaskInstance ${instanceId} of ${data.ref}`);
      this.deps.logger.info({ schedule, instanceId, ref: data.ref }, 'schedule fired');
      return { instanceId, ref: data.ref };
    } catch (error) {
      // A package, version or task that is gone, or an input its schema refuses, will not be
      // better on a retry: the firing fails for good (visible in Bull Board), the schedule stays.
      if (
        error instanceof UnknownTaskError ||
        error instanceof InputSchemaError ||
        error instanceof UnknownSecretError
      ) {
        throw new UnrecoverableError(`schedule ${schedule}: ${error.message}`);
      }
      throw error;
    }
  }

  private async instanceData(firing: FireJobData): Promise<TaskInstanceData> {
    const { schedule, ref, input } = firing;
    const parsed = parseTaskRef(ref);
    const version = await this.deps.store.resolve(parsed.name, parsed.version);
    const spec = version.manifest.tasks[parsed.task];
    if (spec === undefined) {
      throw new UnknownTaskError(
        `Expected package ${version.name}@${version.sha1.slice(0, 12)} to define task ${parsed.task}`,
      );
    }
    checkTaskInput(parsed.task, spec, input);
    const secrets = await this.firingSecrets(parsed.task, declaredSecrets(version.manifest, parsed.task), firing);
    const parallel = spec.kind === 'parallel';
    return {
      ref: formatTaskRef(version.name, version.sha1, parsed.task),
      package: { name: version.name, sha1: version.sha1 },
      task: parsed.task,
      input,
      submittedAt: Date.now(),
      kind: spec.kind ?? 'simple',
      attempts: parallel ? (spec.attempts ?? 1) : 1,
      ...(parallel && spec.maxFailedWorkunits !== undefined ? { maxFailedWorkunits: spec.maxFailedWorkunits } : {}),
      schedule,
      ...(firing.env !== undefined ? { env: firing.env } : {}),
      ...(secrets !== undefined ? { secrets } : {}),
    };
  }

  /** The firing's secret mapping over the task's declared names; every one must still be stored. */
  private async firingSecrets(
    task: string,
    declared: readonly string[],
    firing: FireJobData,
  ): Promise<SecretMapping | undefined> {
    const mapping = secretMappingOf(declared, firing.secrets);
    const entries = Object.entries(mapping);
    if (entries.length === 0) {
      return undefined;
    }
    const [missing] = await missingSecrets(this.deps.redis, this.deps.keys, [
      ...new Set(entries.map(([, name]) => name)),
    ]);
    if (missing !== undefined) {
      throw new UnknownSecretError(
        `Expected secret ${missing} to be stored for task ${task} (set it with \`tydra secret set ${missing}\`), got none`,
        missing,
      );
    }
    return mapping;
  }
}

/** A UUID-shaped id derived from the firing's job id: the same firing always makes the same TaskInstance. */
export function firingInstanceId(job: Pick<Job, 'id' | 'queueName'>): string {
  const hex = createHash('sha1')
    .update(`${job.queueName}/${job.id ?? ''}`)
    .digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
