/**
 * The sha1 that names a package version's tarball. Its own module so that what only checks a
 * tarball (the store, on a node) does not load the packer and tar-stream with it.
 */
import { createHash } from 'node:crypto';

export function sha1Hex(bytes: Buffer): string {
  return createHash('sha1').update(bytes).digest('hex');
}
