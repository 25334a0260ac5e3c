/** Limits on a package's tarball and tree, checked at deploy and again when a node extracts it. */
import { z } from 'zod';

import { MiB, positiveInt } from '../core/options.js';
import { parseOptions } from '../core/validate.js';

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

const packageLimitsSchema = z.strictObject({
  maxPackageBytes: positiveInt.default(50 * MiB),
  maxUnpackedBytes: positiveInt.default(250 * MiB),
  maxEntries: positiveInt.default(10_000),
  maxPathDepth: positiveInt.default(64),
  maxPathLength: positiveInt.default(1024),
});

export function compilePackageLimits(raw: PackageLimits = {}): CompiledPackageLimits {
  return parseOptions(packageLimitsSchema, raw);
}
