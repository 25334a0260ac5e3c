/**
 * Flag parsers: they turn text into the value a library option takes, and nothing more. Ranges
 * and defaults belong to the options modules (`lib/<role>/options.ts`), which validate once.
 */
import { InvalidArgumentError } from 'commander';

import { LIMIT_FLAGS, type LimitName, parseLimitValue, type TaskLimits } from '../../lib/core/limit-values.js';

export const LIMIT_FLAG_NAMES = Object.keys(LIMIT_FLAGS).join(', ');

/** A whole number; the option it feeds says which range is allowed. */
export function integer(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) {
    throw new InvalidArgumentError(`Expected a non-negative integer, got \`${text}\``);
  }
  return value;
}

/** Commander reducer for repeated `--limit name=value`. */
export function collectLimits(text: string, previous: TaskLimits): TaskLimits {
  const at = text.indexOf('=');
  const name: LimitName | undefined = at === -1 ? undefined : LIMIT_FLAGS[text.slice(0, at)];
  if (name === undefined) {
    throw new InvalidArgumentError(`Expected name=value with a name among ${LIMIT_FLAG_NAMES}, got \`${text}\``);
  }
  return { ...previous, [name]: limitValue(name, text.slice(at + 1)) };
}

/** `10GiB`, `512M`, `1048576`. */
export function bytesValue(text: string): number {
  return limitValue('memoryBytes', text);
}

function limitValue(name: LimitName, text: string): number {
  try {
    return parseLimitValue(name, text);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export function userValue(text: string): { uid: number; gid: number } {
  const match = /^(\d{1,10}):(\d{1,10})$/.exec(text);
  if (match === null) {
    throw new InvalidArgumentError(`Expected UID:GID as numbers, got \`${text}\``);
  }
  return { uid: Number(match[1]), gid: Number(match[2]) };
}

/** Flags not given stay out of the options object, so the library's defaults apply. */
export function stripUndefined<T extends object>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as T;
}
