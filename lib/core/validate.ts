import type { z } from 'zod';

import { describe, InvalidOptionError } from './errors.js';

/**
 * Parses `raw` with `schema`, or throws an `InvalidOptionError` naming the first bad field, the
 * expectation and the received value: "Expected the `concurrency` option to be …, got `0` (number)".
 * @internal
 */
export function parseOptions<S extends z.ZodType>(
  schema: S,
  raw: unknown,
  what = 'option',
  ErrorClass: new (message: string) => Error = InvalidOptionError,
): z.output<S> {
  const result = schema.safeParse(raw);
  if (result.success) {
    return result.data;
  }
  const issue = result.error.issues[0];
  if (!issue) {
    throw new ErrorClass(`Expected a valid ${what}, got ${describe(raw)}`);
  }
  const path = issue.path.map(String).join('.');
  const received = issue.path.reduce<unknown>(
    (value, key) =>
      value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined,
    raw,
  );
  const subject = path ? `the \`${path}\` ${what}` : `the ${what}`;
  // A Redis URL or a password may hold a secret: say what was wrong, never echo the value.
  const secret = issue.path.some(
    (key) => key === 'redis' || key === 'password' || key === 'auth' || key === 'secretKey',
  );
  const got =
    issue.code === 'unrecognized_keys'
      ? `unknown key(s) ${issue.keys.map((k) => `\`${k}\``).join(', ')}`
      : secret
        ? `a ${typeof received} (not shown: it may hold a secret)`
        : describe(received);
  throw new ErrorClass(`Expected ${subject} to be valid (${lowerFirst(issue.message)}), got ${got}`);
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
