/**
 * Where the browser test finds Debian's chromium (installed by scripts/setup.sh): playwright-core
 * drives it and never downloads a browser of its own. A missing chromium fails the test with a
 * pointer to the setup script; it never skips.
 */
import { existsSync } from 'node:fs';

/** The real binary first, then Debian's wrapper script. */
export const CHROMIUM_PATHS = ['/usr/lib/chromium/chromium', '/usr/bin/chromium'];

/** The first of `paths` that exists; throws, saying what to run, when none does. */
export function findChromium(paths: string[] = CHROMIUM_PATHS): string {
  const found = paths.find((path) => existsSync(path));
  if (found === undefined) {
    throw new Error(
      `chromium is not installed (looked for ${paths.join(', ')}); the browser test drives Debian's chromium: run scripts/setup.sh`,
    );
  }
  return found;
}
