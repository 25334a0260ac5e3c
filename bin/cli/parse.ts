/**
 * Flag parsers: they turn text into the value a library option takes, and nothing more. Ranges
 * and defaults belong to the options modules (`lib/<role>/options.ts`), which validate once.
 */
import { InvalidArgumentError } from 'commander';

import { DURATION_PATTERN, parseDuration } from '../../lib/core/duration.js';
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

/** A whole number from 1, for flags where 0 means nothing (`--attempts`): one message for `abc` and `0`. */
export function positiveInteger(text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value === 0) {
    throw new InvalidArgumentError(`Expected a positive integer, got \`${text}\``);
  }
  return value;
}

/**
 * `--at`: an ISO 8601 date-time that says its zone (`Z` or an offset). One without would be read
 * in some time zone or other; the client refuses it, with a message that cannot tell why. The
 * rest (a real date, in the future, within a year) is the client's to check.
 */
export function zonedDateTime(text: string): string {
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) {
    throw new InvalidArgumentError(
      `Expected an ISO 8601 date-time with Z or an offset, such as ${text}Z or ${text}+01:00, got \`${text}\``,
    );
  }
  return text;
}

/**
 * Commander reducer for repeated `--limit name=value`. No commander default: it would show in
 * `--help` as `(default: {})`; the first call gets `undefined`.
 */
export function collectLimits(text: string, previous: TaskLimits = {}): TaskLimits {
  const at = text.indexOf('=');
  const name: LimitName | undefined = at === -1 ? undefined : LIMIT_FLAGS[text.slice(0, at)];
  if (name === undefined) {
    throw new InvalidArgumentError(`Expected name=value with a name among ${LIMIT_FLAG_NAMES}, got \`${text}\``);
  }
  return { ...previous, [name]: limitValue(name, text.slice(at + 1)) };
}

/** A parser of `10GiB`, `512M`, `1048576` for `flag`, which its messages name. */
export function bytesOf(flag: string): (text: string) => number {
  return (text) => limitValue('memoryBytes', text, flag);
}

function limitValue(name: LimitName, text: string, label?: string): number {
  try {
    return parseLimitValue(name, text, label);
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

/**
 * Commander reducer for repeated `--env NAME=value` (the value is everything after the first `=`,
 * and may be empty). The names' rules are the client's, which checks them once. Like
 * {@link collectLimits}, it starts from `undefined`.
 */
export function collectEnv(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = text.indexOf('=');
  if (at <= 0) {
    throw new InvalidArgumentError(`Expected NAME=value, got \`${text.length > 80 ? `${text.slice(0, 80)}…` : text}\``);
  }
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}

/** `exponential:1000` or `fixed:500`: the backoff type and its delay in ms. */
export function backoffValue(text: string): { type: 'exponential' | 'fixed'; delayMs: number } {
  const match = /^(exponential|fixed):(\d+)$/.exec(text);
  if (match === null) {
    throw new InvalidArgumentError(`Expected exponential:MS or fixed:MS, got \`${text}\``);
  }
  return { type: match[1] as 'exponential' | 'fixed', delayMs: Number(match[2]) };
}

/**
 * `--keep-completed` / `--keep-failed`: a count (`1000`), an age (`24h`) or both (`1000,24h`),
 * the client's `keepCompleted` / `keepFailed`; the client checks the ranges.
 */
export function keepValue(text: string): { count?: number; ageMs?: number } {
  const keep: { count?: number; ageMs?: number } = {};
  for (const part of text.split(',')) {
    const trimmed = part.trim();
    if (/^\d{1,9}$/.test(trimmed) && keep.count === undefined) {
      keep.count = Number(trimmed);
    } else if (DURATION_PATTERN.test(trimmed) && keep.ageMs === undefined) {
      keep.ageMs = parseDuration(trimmed, 'the age to keep');
    } else {
      throw new InvalidArgumentError(
        `Expected COUNT, AGE or COUNT,AGE (such as 1000, 24h or 1000,24h), got \`${text}\``,
      );
    }
  }
  return keep;
}
