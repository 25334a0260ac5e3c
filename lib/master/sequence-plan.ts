/**
 * The steps of a sequence, read from the manifest stored with the pinned package version (the
 * versions hash), never from the latest deploy: every step runs at the version the sequence was
 * submitted with.
 *
 * A local, tolerant parser: it reads only `tasks.<name>.steps` and each step task's `kind`, and
 * ignores every other field, so it does not depend on the manifest module's full schema (which
 * deploy has already checked). It re-checks what the master relies on: step names that the
 * package defines, and no step naming the sequence itself.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';

import type { TaskKind } from '../../queues/tasks.js';
import { ManifestError } from '../core/errors.js';
import type { Keyspace } from '../redis/keys.js';

/** One step: a single task, or (`all`) tasks run concurrently on the same input. */
export interface SequenceStep {
  tasks: string[];
  all: boolean;
  /** How logs and progress name it: `count`, or `all(chart, summary)`. */
  label: string;
}

export interface SequencePlan {
  steps: SequenceStep[];
  /** The kind of a step's task, as its manifest entry says (absent: simple). */
  kindOf(task: string): TaskKind;
}

const stepSchema = z.union([z.string().min(1), z.object({ all: z.array(z.string().min(1)).min(1) })]);
const storedVersionSchema = z.object({
  manifest: z.object({ tasks: z.record(z.string(), z.unknown()) }),
});
const sequenceTaskSchema = z.object({ steps: z.array(stepSchema).min(1) });
const kindSchema = z.object({ kind: z.enum(['simple', 'parallel', 'sequence']).optional() });

/** The plan of sequence `task` of `name@sha1`; throws a `ManifestError` naming the field when it cannot be run. */
export async function readSequencePlan(
  redis: Redis,
  keys: Keyspace,
  pkg: { name: string; sha1: string },
  task: string,
): Promise<SequencePlan> {
  const where = `${pkg.name}@${pkg.sha1.slice(0, 12)}`;
  const raw = await redis.hget(keys.packageVersions(pkg.name), pkg.sha1);
  if (raw === null) {
    throw new ManifestError(`Expected package version ${where} to be stored, found none (pruned?)`);
  }
  const stored = storedVersionSchema.safeParse(parseJson(raw));
  if (!stored.success) {
    throw new ManifestError(`Expected the stored manifest of ${where} to list its tasks, got an unreadable entry`);
  }
  const { tasks } = stored.data.manifest;
  const spec = sequenceTaskSchema.safeParse(tasks[task]);
  if (!spec.success) {
    throw new ManifestError(
      `Expected \`tasks.${task}.steps\` of ${where} to be 1 or more task names or { all: [names] }, got ${spec.error.issues[0]?.message ?? 'something else'}`,
      `tasks.${task}.steps`,
    );
  }
  const steps = spec.data.steps.map((step, index): SequenceStep => {
    const names = typeof step === 'string' ? [step] : step.all;
    names.forEach((name, branch) => {
      const field =
        typeof step === 'string' ? `tasks.${task}.steps[${index}]` : `tasks.${task}.steps[${index}].all[${branch}]`;
      if (name === task || tasks[name] === undefined) {
        throw new ManifestError(
          `Expected \`${field}\` of ${where} to name another task of the package, got ${JSON.stringify(name)}`,
          field,
        );
      }
    });
    return {
      tasks: names,
      all: typeof step !== 'string',
      label: typeof step === 'string' ? step : `all(${names.join(', ')})`,
    };
  });
  return {
    steps,
    kindOf: (name) => {
      const parsed = kindSchema.safeParse(tasks[name]);
      return (parsed.success ? parsed.data.kind : undefined) ?? 'simple';
    },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
