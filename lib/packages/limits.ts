/** Limits on a package's tarball and tree, checked at deploy and again when a node extracts it. */
import { z } from 'zod';

import { positiveInt } from '../core/options.js';
import { parseOptions } from '../core/validate.js';
import { PACKAGE_LIMIT_DEFAULTS } from './defaults.js';

/** Limits on a package, checked at deploy and again when a node extracts it. */
export interface PackageLimits {
  /** Largest compressed tarball. @defaultValue 50 MiB */
  maxPackageBytes?: number;
  /** Largest total of uncompressed file bytes. @defaultValue 250 MiB */
  maxUnpackedBytes?: number;
  /** Most entries (files and folders). @defaultValue 10,000 */
  maxEntries?: number;
  /** Deepest path, in segments. @defaultValue 64 */
  maxPathDepth?: number;
  /** Longest path, in bytes. @defaultValue 1,024 */
  maxPathLength?: number;
}
export type CompiledPackageLimits = Required<PackageLimits>;

export { PACKAGE_LIMIT_DEFAULTS };

export const packageLimitsSchema = z.strictObject({
  maxPackageBytes: positiveInt.default(PACKAGE_LIMIT_DEFAULTS.maxPackageBytes),
  maxUnpackedBytes: positiveInt.default(PACKAGE_LIMIT_DEFAULTS.maxUnpackedBytes),
  maxEntries: positiveInt.default(PACKAGE_LIMIT_DEFAULTS.maxEntries),
  maxPathDepth: positiveInt.default(PACKAGE_LIMIT_DEFAULTS.maxPathDepth),
  maxPathLength: positiveInt.default(PACKAGE_LIMIT_DEFAULTS.maxPathLength),
});

export function compilePackageLimits(raw: PackageLimits = {}): CompiledPackageLimits {
  return parseOptions(packageLimitsSchema, raw);
}
