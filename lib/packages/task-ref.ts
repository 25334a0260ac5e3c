import { InvalidTaskRefError } from '../core/errors.js';
import { PACKAGE_NAME_PATTERN, TASK_NAME_PATTERN } from './manifest.js';

/** A parsed task reference: `name/task`, or `name@<sha1 or prefix ≥ 7 hex>/task`. */
export interface TaskRef {
  name: string;
  /** The pinned version (full sha1 or a prefix of at least 7 hex digits), if any. */
  version: string | undefined;
  task: string;
}

const VERSION_PATTERN = /^[0-9a-f]{7,40}$/;

export function parseTaskRef(ref: unknown): TaskRef {
  if (typeof ref !== 'string') {
    throw new InvalidTaskRefError(
      `Expected a task reference like \`hello/greet\` or \`hello@1a2b3c4/greet\`, got ${typeof ref}`,
    );
  }
  const slash = ref.indexOf('/');
  const task = slash === -1 ? '' : ref.slice(slash + 1);
  const shown = show(ref);
  if (slash === -1 || !TASK_NAME_PATTERN.test(task)) {
    throw new InvalidTaskRefError(`Expected a task reference of the form \`name[@sha1]/task\`, got ${shown}`);
  }
  return { ...splitPackage(ref.slice(0, slash), shown), task };
}

/**
 * `name` or `name@<sha1 or prefix ≥ 7 hex>`, as `tydra undeploy` takes a version, checked by the
 * same rules as a task reference.
 */
export function parsePackageVersion(text: string): { name: string; version: string | undefined } {
  return splitPackage(text, show(text));
}

/** A package name by the manifest's rule, e.g. for `tydra packages NAME`. */
export function parsePackageName(text: string): string {
  const { name, version } = splitPackage(text, show(text));
  if (version !== undefined) {
    throw new InvalidTaskRefError(`Expected a package name without a version, got ${show(text)}`);
  }
  return name;
}

function splitPackage(pkg: string, shown: string): { name: string; version: string | undefined } {
  const at = pkg.indexOf('@');
  const name = at === -1 ? pkg : pkg.slice(0, at);
  const version = at === -1 ? undefined : pkg.slice(at + 1).toLowerCase();
  if (!PACKAGE_NAME_PATTERN.test(name)) {
    throw new InvalidTaskRefError(
      `Expected the package name in ${shown} to match ${PACKAGE_NAME_PATTERN}, got \`${name}\``,
    );
  }
  if (version !== undefined && !VERSION_PATTERN.test(version)) {
    throw new InvalidTaskRefError(
      `Expected the version in ${shown} to be a sha1 or a prefix of at least 7 hex digits, got \`${version}\``,
    );
  }
  return { name, version };
}

function show(text: string): string {
  return JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}...` : text);
}

export function formatTaskRef(name: string, sha1: string, task: string): string {
  return `${name}@${sha1}/${task}`;
}
