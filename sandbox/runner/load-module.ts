/** Imports task code from the read-only package folder and picks the function it must export. */
import { pathToFileURL } from 'node:url';

/** The folder the package is mounted at (read-only); the launcher always sets it. */
const PACKAGE_DIR = process.env.TYDRA_PACKAGE_DIR ?? '/task';

/**
 * The export `name` of the package module `module` (`default` for a simple task), or a
 * TypeError naming both when it is not a function.
 */
export async function loadExport<F extends (...args: never[]) => unknown>(
  module: string,
  name: string,
  signature: string,
): Promise<F> {
  const exports = (await import(pathToFileURL(`${PACKAGE_DIR}/${module}`).href)) as Record<string, unknown>;
  const fn = exports[name];
  if (typeof fn !== 'function') {
    const which = name === 'default' ? 'the default export' : `an export named \`${name}\``;
    throw new TypeError(`Expected ${which} of ${module} to be a function ${signature}, got ${typeof fn}`);
  }
  return fn as F;
}
