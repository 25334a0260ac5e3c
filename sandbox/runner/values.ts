/** Turning what task code returns or logs into what crosses the protocol as JSON. */

/** The result must survive JSON: `undefined` becomes `null`; BigInt or cycles fail the task. */
export function toJsonValue(value: unknown, what = "the task's result"): unknown {
  if (value === undefined) {
    return null;
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`Expected ${what} to be JSON-serialisable, got an error: ${(error as Error).message}`);
  }
  return text === undefined ? null : (JSON.parse(text) as unknown);
}

/**
 * A work unit must be a JSON value as it is: it is stored, sent to other nodes and retried, so
 * `undefined`, functions or symbols are refused rather than silently turned into `null`.
 */
export function toJsonUnit(value: unknown, what: string): unknown {
  const text = ((): string | undefined => {
    try {
      return JSON.stringify(value);
    } catch (error) {
      throw new TypeError(`Expected ${what} to be JSON-serialisable, got an error: ${(error as Error).message}`);
    }
  })();
  if (text === undefined) {
    throw new TypeError(`Expected ${what} to be JSON-serialisable, got ${typeof value}`);
  }
  return JSON.parse(text) as unknown;
}

export function formatArg(arg: unknown): string {
  if (typeof arg === 'string') {
    return arg;
  }
  if (arg instanceof Error) {
    return arg.stack ?? arg.message;
  }
  try {
    return JSON.stringify(arg) ?? String(arg);
  } catch {
    return String(arg);
  }
}
