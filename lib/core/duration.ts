/** Short durations as people write them on a command line: `30s`, `10m`, `1h`, `2d`. */
import { InvalidOptionError } from './errors.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** What {@link parseDuration} accepts: a whole number and one unit. */
export const DURATION_PATTERN = /^(\d{1,9})(ms|s|m|h|d)$/;

/** The duration in ms, or throws an `InvalidOptionError` naming `what` and the value it got. */
export function parseDuration(text: string, what: string): number {
  const match = DURATION_PATTERN.exec(text.trim());
  if (match === null) {
    throw new InvalidOptionError(
      `Expected ${what} to be a duration such as 30s, 10m, 1h or 2d (a whole number and one of ms, s, m, h, d), got ${JSON.stringify(text)}`,
    );
  }
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}
