/**
 * `tydra.json`: the only place task names and descriptions are read from. Neither the master
 * nor the client ever imports task code.
 *
 * A task has a kind (`kind`, absent = `simple`):
 * - simple: one run of a JS `module` or a `command`;
 * - parallel: `split` → workunits spread over the nodes → `reduce`, from one JS `module` exporting
 *   the three functions or from three commands (`split`, `work`, `reduce`, each `{ command }`);
 * - sequence: `steps` run one after the other (each a task name of the package, or `{ all: [...] }`
 *   for tasks run concurrently on the same input).
 */
import { z } from 'zod';

import type { TaskKind } from '../../queues/tasks.js';
import { describe, ManifestError } from '../core/errors.js';
import { taskLimitsSchema } from '../core/limits.js';
import { ENV_NAME_PATTERN, isReservedEnvName } from '../core/task-env.js';
import { taskNetworkSchema } from '../core/network-endpoint.js';
import { compileTaskSchema, jsonSchemaField } from './task-schemas.js';

export type { TaskKind } from '../../queues/tasks.js';

export const MANIFEST_FILE = 'tydra.json';

/** Package names: lower-case, digits, `.`, `_`, `-`; 1 to 64 characters. */
export const PACKAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Task names: letters, digits, `.`, `_`, `-`; 1 to 64 characters. */
export const TASK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Bounds of a sequence: steps, and tasks of one `all` step. */
export const SEQUENCE_LIMITS = Object.freeze({ maxSteps: 64, minAll: 2, maxAll: 16 });

const TASK_KINDS: readonly TaskKind[] = ['simple', 'parallel', 'sequence'];

/** A path inside the package: relative, `/`-separated, no `.`/`..` segments. */
const packagePath = z
  .string()
  .min(1)
  .max(1024)
  .refine((path) => isPackageRelativePath(path), 'a relative path inside the package, without `..`');

const commandSchema = z
  .array(
    z
      .string()
      .min(1)
      .max(4096)
      .refine((arg) => !arg.includes('\0'), 'no NUL bytes'),
  )
  .min(1)
  .max(256);

/**
 * A command's exit codes that mean "failed for good": the TaskInstance (or workunit) fails with
 * `TaskUnrecoverableError` and is not retried, as a JavaScript task's `ctx.fail()`. 1 to 125: 0 is
 * success, 126 and 127 are the shell's "cannot run", and 128 + N a death by signal N.
 */
const unrecoverableExitCodesSchema = z.array(z.number().int().min(1).max(125)).min(1).max(32);

const secretNameSchema = z
  .string()
  .regex(ENV_NAME_PATTERN, `a secret name matching ${ENV_NAME_PATTERN.source}`)
  .refine((name) => !isReservedEnvName(name), 'a name tydra does not set itself (not PATH, HOME, TYDRA_*, LD_*…)');

const taskName = z.string().regex(TASK_NAME_PATTERN, `a task name matching ${TASK_NAME_PATTERN}`);

const simpleTaskSchema = z
  .strictObject({
    kind: z.literal('simple').optional(),
    description: z.string().max(1000).optional(),
    module: packagePath.optional(),
    command: commandSchema.optional(),
    /** A command's exit codes that fail it for good, never retried. */
    unrecoverableExitCodes: unrecoverableExitCodesSchema.optional(),
    /** This task's limits; override the package's, capped by each node's maxima. */
    limits: taskLimitsSchema.optional(),
    /** JSON Schema of the input, checked at submit (`task-schemas.ts`). */
    input: jsonSchemaField.optional(),
    /** JSON Schema of the value, checked on the node after the run. */
    output: jsonSchemaField.optional(),
    /** Secrets the task sees as environment variables of these names (`lib/core/secret-box.ts`). */
    secrets: z.array(secretNameSchema).max(64).optional(),
    /** Endpoints the task connects to, opened where the node allows them (`network-endpoint.ts`). */
    network: taskNetworkSchema.optional(),
  })
  .refine((task) => (task.module === undefined) !== (task.command === undefined), {
    message: 'exactly one of `module` or `command`',
  })
  .refine((task) => task.command !== undefined || task.unrecoverableExitCodes === undefined, {
    message: '`unrecoverableExitCodes` only with `command` (a module calls `ctx.fail()` instead)',
  });

const phaseCommandSchema = z.strictObject({
  command: commandSchema,
  unrecoverableExitCodes: unrecoverableExitCodesSchema.optional(),
});

const parallelTaskSchema = z
  .strictObject({
    kind: z.literal('parallel'),
    description: z.string().max(1000).optional(),
    /** A JS module exporting `split`, `work` and `reduce`. */
    module: packagePath.optional(),
    split: phaseCommandSchema.optional(),
    work: phaseCommandSchema.optional(),
    reduce: phaseCommandSchema.optional(),
    /** Limits of each sandbox (split, each work sandbox, reduce); `timeoutMs` is per workunit for work. */
    limits: taskLimitsSchema.optional(),
    /** Tries of each workunit before it fails for good. */
    attempts: z.number().int().min(1).max(100).optional(),
    /** Workunits that may fail for good before the TaskInstance does. */
    maxFailedWorkunits: z.number().int().min(0).optional(),
    /** Secrets every phase (split, each work sandbox, reduce) sees as environment variables of these names. */
    secrets: z.array(secretNameSchema).max(64).optional(),
    /**
     * Endpoints every phase (split, each work sandbox, reduce) connects to, opened where the node
     * that runs the phase allows them (its own `--allow-connect`).
     */
    network: taskNetworkSchema.optional(),
    /** JSON Schema of the input, checked at submit. */
    input: jsonSchemaField.optional(),
    /** JSON Schema of reduce's value, checked on the node after reduce. */
    output: jsonSchemaField.optional(),
  })
  .refine(
    (task) => {
      const commands = [task.split, task.work, task.reduce].filter((phase) => phase !== undefined).length;
      return task.module !== undefined ? commands === 0 : commands === 3;
    },
    { message: 'either `module` or all three of `split`, `work` and `reduce` (each `{ "command": [...] }`)' },
  );

const sequenceStepSchema = z.union([
  taskName,
  z.strictObject({
    all: z.array(taskName).min(SEQUENCE_LIMITS.minAll).max(SEQUENCE_LIMITS.maxAll),
  }),
]);

const sequenceTaskSchema = z.strictObject({
  kind: z.literal('sequence'),
  description: z.string().max(1000).optional(),
  steps: z.array(sequenceStepSchema).min(1).max(SEQUENCE_LIMITS.maxSteps),
  /** JSON Schema of the input, checked at submit. */
  input: jsonSchemaField.optional(),
  /**
   * Refused: nothing checks a sequence's own value yet. Its value is its last step's, which that
   * step's own `output` checks.
   */
  output: z.never({ error: "no `output` on a sequence: give its last step's task an `output` schema" }).optional(),
});

const taskSchema = z.discriminatedUnion('kind', [simpleTaskSchema, parallelTaskSchema, sequenceTaskSchema], {
  error: (issue) =>
    issue.code === 'invalid_union' ? `one of ${TASK_KINDS.join(', ')}; absent means simple` : undefined,
});

const manifestSchema = z.strictObject({
  name: z.string().regex(PACKAGE_NAME_PATTERN, `a package name matching ${PACKAGE_NAME_PATTERN}`),
  description: z.string().max(4000).optional(),
  /** Limits of every task of the package unless the task sets its own. */
  limits: taskLimitsSchema.optional(),
  tasks: z
    .record(z.string().regex(TASK_NAME_PATTERN, `task names matching ${TASK_NAME_PATTERN}`), taskSchema)
    .refine((tasks) => Object.keys(tasks).length > 0, 'at least one task'),
});

/** A task as today: one run of a module or a command. */
export type SimpleTaskSpec = z.output<typeof simpleTaskSchema>;
/** split → workunits → reduce, from a JS module or three commands. */
export type ParallelTaskSpec = z.output<typeof parallelTaskSchema>;
/** Tasks of the same package run one after the other. */
export type SequenceTaskSpec = z.output<typeof sequenceTaskSchema>;
/** One step of a sequence: a task name, or tasks run concurrently on the same input. */
export type SequenceStep = z.output<typeof sequenceStepSchema>;
/** A task of `tydra.json`, whatever its kind (see {@link taskKind}). */
export type TaskSpec = SimpleTaskSpec | ParallelTaskSpec | SequenceTaskSpec;
export type Manifest = z.output<typeof manifestSchema>;

/** What a sandbox of one phase of a parallel task starts: a JS module in a mode, or a command. */
export type PhaseEntry =
  | { module: string; mode: 'split' | 'work' | 'reduce' }
  | { command: readonly string[]; unrecoverableExitCodes?: readonly number[] };

/** The kind of a task: its `kind`, or `simple` when it has none. */
export function taskKind(spec: TaskSpec): TaskKind {
  return spec.kind ?? 'simple';
}

export function isSimpleTask(spec: TaskSpec): spec is SimpleTaskSpec {
  return taskKind(spec) === 'simple';
}

/** The entry of each phase of a parallel task. */
export function parallelEntries(spec: ParallelTaskSpec): { split: PhaseEntry; work: PhaseEntry; reduce: PhaseEntry } {
  const { module } = spec;
  if (module !== undefined) {
    return {
      split: { module, mode: 'split' },
      work: { module, mode: 'work' },
      reduce: { module, mode: 'reduce' },
    };
  }
  const { split, work, reduce } = spec;
  if (split === undefined || work === undefined || reduce === undefined) {
    // parseManifest refuses such a spec: only a hand-made one gets here.
    throw new ManifestError('Expected a parallel task with `module` or all three phase commands, got neither');
  }
  return { split, work, reduce };
}

/**
 * The secrets a TaskInstance of `task` needs by name: its own `secrets`, or for a sequence those
 * of every task its steps run, nested sequences included (each step gets the sequence's mapping
 * and its own declared names).
 */
export function declaredSecrets(manifest: Pick<Manifest, 'tasks'>, task: string, seen = new Set<string>()): string[] {
  const spec = manifest.tasks[task];
  if (spec === undefined || seen.has(task)) {
    return [];
  }
  if (spec.kind !== 'sequence') {
    return [...(spec.secrets ?? [])];
  }
  seen.add(task);
  const names = spec.steps.flatMap(stepTasks).flatMap((step) => declaredSecrets(manifest, step, seen));
  return [...new Set(names)];
}

/** The task names a step runs (one, or those of its `all`). */
export function stepTasks(step: SequenceStep): string[] {
  return typeof step === 'string' ? [step] : step.all;
}

/** Parses the text of `tydra.json`; throws a `ManifestError` naming the bad field. */
export function parseManifest(text: string): Manifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(
      `Expected ${MANIFEST_FILE} to be valid JSON, got a parse error: ${(error as Error).message}`,
    );
  }
  const result = manifestSchema.safeParse(raw);
  if (!result.success) {
    const first = result.error.issues[0];
    throw manifestIssueError(first && closestIssue(first), raw);
  }
  checkSequences(result.data);
  checkTaskSchemas(result.data);
  return result.data;
}

/** A field path as people write it: `tasks.report.steps[2].all[1]`. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, index) => (typeof key === 'number' ? `[${key}]` : `${index > 0 ? '.' : ''}${String(key)}`))
    .join('');
}

/**
 * A union (a step: a name or `{ all }`) that matches no option reports one issue holding each
 * option's issues; the option that got furthest (the longest path) says what was meant.
 */
function closestIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) {
    return issue;
  }
  let best: z.core.$ZodIssue = issue;
  for (const branch of issue.errors) {
    const first = branch[0];
    if (first === undefined) {
      continue;
    }
    const inner = closestIssue(first);
    const candidate = { ...inner, path: [...issue.path, ...inner.path] } as z.core.$ZodIssue;
    if (best === issue || candidate.path.length > best.path.length) {
      best = candidate;
    }
  }
  return best;
}

function manifestIssueError(issue: z.core.$ZodIssue | undefined, raw: unknown): ManifestError {
  if (issue === undefined) {
    return new ManifestError(`Expected a valid ${MANIFEST_FILE}, got ${describe(raw)}`);
  }
  const field = fieldPath(issue.path);
  const received = issue.path.reduce<unknown>(
    (value, key) =>
      value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined,
    raw,
  );
  const subject = field ? `the \`${field}\` field of ${MANIFEST_FILE}` : MANIFEST_FILE;
  const got =
    issue.code === 'unrecognized_keys'
      ? `unknown key(s) ${issue.keys.map((k) => `\`${k}\``).join(', ')}`
      : describe(received);
  // zod's messages start a sentence ("Invalid input"); one that starts with a placeholder
  // (`HOST:PORT with …`) keeps its capitals.
  const expected = /^[A-Z][a-z]/.test(issue.message)
    ? issue.message.charAt(0).toLowerCase() + issue.message.slice(1)
    : issue.message;
  return new ManifestError(`Expected ${subject} to be valid (${expected}), got ${got}`, field || undefined);
}

/**
 * Each `input` and `output` compiles as a JSON Schema (cached: a node reading the manifest of
 * every job compiles nothing again).
 */
function checkTaskSchemas(manifest: Manifest): void {
  for (const [name, task] of Object.entries(manifest.tasks)) {
    for (const which of ['input', 'output'] as const) {
      const schema = task[which];
      if (schema === undefined) {
        continue;
      }
      try {
        compileTaskSchema(schema);
      } catch (error) {
        const field = `tasks.${name}.${which}`;
        throw new ManifestError(
          `Expected the \`${field}\` field of ${MANIFEST_FILE} to be a valid JSON Schema, got one that is not: ${(error as Error).message}`,
          field,
        );
      }
    }
  }
}

/**
 * What the schema cannot see: every step names a task of the package, and no sequence reaches
 * itself through its steps (it would run forever, one TaskInstance per step).
 */
function checkSequences(manifest: Manifest): void {
  for (const [name, task] of Object.entries(manifest.tasks)) {
    if (task.kind !== 'sequence') {
      continue;
    }
    task.steps.forEach((step, index) => {
      stepTasks(step).forEach((stepName, inner) => {
        if (manifest.tasks[stepName] === undefined) {
          const field = stepField(name, step, index, inner);
          const known = Object.keys(manifest.tasks).join(', ');
          throw new ManifestError(
            `Expected \`${field}\` to name a task of the package (${known}), got \`${stepName}\``,
            field,
          );
        }
      });
    });
  }
  checkNoCycles(manifest);
}

/**
 * Depth-first over the sequences with the usual three colours (unseen, on the path, done): each
 * task is walked once, so a manifest of many sequences sharing steps costs linear time, not one
 * walk per path. A step naming a task still on the path closes a loop.
 */
function checkNoCycles(manifest: Manifest): void {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (name: string): void => {
    const task = manifest.tasks[name];
    if (task?.kind !== 'sequence' || done.has(name)) {
      return;
    }
    path.push(name);
    task.steps.forEach((step, index) => {
      stepTasks(step).forEach((stepName, inner) => {
        const at = path.indexOf(stepName);
        if (at !== -1) {
          const field = stepField(name, step, index, inner);
          const loop = [...path.slice(at), stepName].join(' → ');
          throw new ManifestError(
            `Expected sequence \`${stepName}\` never to reach itself through its steps, got \`${field}\` closing the loop ${loop}`,
            field,
          );
        }
        visit(stepName);
      });
    });
    path.pop();
    done.add(name);
  };
  for (const name of Object.keys(manifest.tasks)) {
    visit(name);
  }
}

function stepField(task: string, step: SequenceStep, index: number, inner: number): string {
  return `tasks.${task}.steps[${index}]${typeof step === 'string' ? '' : `.all[${inner}]`}`;
}

/** A file the package must hold for a task, and the field (below `tasks.<name>.`) that names it. */
export interface RequiredFile {
  file: string;
  field: string;
}

/** Files in the package that a task needs: modules, and the package-relative paths in commands. */
export function requiredFiles(task: TaskSpec): string[] {
  return requiredFileFields(task).map((required) => required.file);
}

/** {@link requiredFiles}, each with the field that names it (`module`, `command`, `split.command`…). */
export function requiredFileFields(task: TaskSpec): RequiredFile[] {
  if (task.kind === 'sequence') {
    return [];
  }
  if (task.module !== undefined) {
    return [{ file: task.module, field: 'module' }];
  }
  if (task.kind === 'parallel') {
    return (['split', 'work', 'reduce'] as const).flatMap((phase) =>
      commandFiles(task[phase]?.command ?? []).map((file) => ({ file, field: `${phase}.command` })),
    );
  }
  return commandFiles(task.command ?? []).map((file) => ({ file, field: 'command' }));
}

/**
 * argv[0] without a slash is a program from the sandbox's PATH (python3, sh); other arguments
 * that look like files (`x.py`, `lib/run.sh`, `./tool`) must ship in the package.
 */
function commandFiles(command: readonly string[]): string[] {
  return command
    .filter((arg, index) => {
      if (arg.startsWith('-') || arg.startsWith('/')) {
        return false;
      }
      if (arg.startsWith('./')) {
        return true;
      }
      return index > 0 && /^[\w.-]+(\/[\w.-]+)*\.[A-Za-z0-9]{1,8}$/.test(arg);
    })
    .map((arg) => arg.replace(/^\.\//, ''));
}

export function isPackageRelativePath(path: string): boolean {
  if (path.startsWith('/') || path.includes('\\') || path.includes('\0')) {
    return false;
  }
  const segments = path.replace(/^\.\//, '').split('/');
  return segments.every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}
