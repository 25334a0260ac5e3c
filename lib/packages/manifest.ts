/**
 * `tydra.json`: the only place task names and descriptions are read from. Neither the master
 * nor the client ever imports task code.
 */
import { z } from 'zod';

import { ManifestError } from '../core/errors.js';
import { taskLimitsSchema } from '../core/limits.js';
import { parseOptions } from '../core/validate.js';

export const MANIFEST_FILE = 'tydra.json';

/** Package names: lower-case, digits, `.`, `_`, `-`; 1 to 64 characters. */
export const PACKAGE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
/** Task names: letters, digits, `.`, `_`, `-`; 1 to 64 characters. */
export const TASK_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** A path inside the package: relative, `/`-separated, no `.`/`..` segments. */
const packagePath = z
  .string()
  .min(1)
  .max(1024)
  .refine((path) => isPackageRelativePath(path), 'a relative path inside the package, without `..`');

const taskSchema = z
  .strictObject({
    description: z.string().max(1000).optional(),
    module: packagePath.optional(),
    command: z
      .array(
        z
          .string()
          .min(1)
          .max(4096)
          .refine((arg) => !arg.includes('\0'), 'no NUL bytes'),
      )
      .min(1)
      .max(256)
      .optional(),
    /** This task's limits; override the package's, capped by each node's maxima. */
    limits: taskLimitsSchema.optional(),
    // Minimal stand-in (branch wt-sequence only) until the manifest helper's TaskSpec union lands.
    kind: z.enum(['simple', 'parallel', 'sequence']).optional(),
    steps: z
      .array(z.union([z.string(), z.strictObject({ all: z.array(z.string()).min(2).max(16) })]))
      .min(1)
      .max(64)
      .optional(),
  })
  .refine(
    (task) =>
      task.kind === 'sequence'
        ? task.steps !== undefined && task.module === undefined && task.command === undefined
        : (task.module === undefined) !== (task.command === undefined),
    { message: 'exactly one of `module` or `command` (a sequence: `steps` only)' },
  );

const manifestSchema = z.strictObject({
  name: z.string().regex(PACKAGE_NAME_PATTERN, `a package name matching ${PACKAGE_NAME_PATTERN}`),
  description: z.string().max(4000).optional(),
  /** Limits of every task of the package unless the task sets its own. */
  limits: taskLimitsSchema.optional(),
  tasks: z
    .record(z.string().regex(TASK_NAME_PATTERN, `task names matching ${TASK_NAME_PATTERN}`), taskSchema)
    .refine((tasks) => Object.keys(tasks).length > 0, 'at least one task'),
});

export type TaskSpec = z.output<typeof taskSchema>;
export type Manifest = z.output<typeof manifestSchema>;

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
  return parseOptions(manifestSchema, raw, `field of ${MANIFEST_FILE}`, ManifestError);
}

/** Files in the package that a task needs: its module, or the package-relative paths in its command. */
export function requiredFiles(task: TaskSpec): string[] {
  if (task.module !== undefined) {
    return [task.module];
  }
  // argv[0] without a slash is a program from the sandbox's PATH (python3, sh); other arguments
  // that look like files (`x.py`, `lib/run.sh`, `./tool`) must ship in the package.
  return (task.command ?? [])
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
