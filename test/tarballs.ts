/** Crafted package tarballs, built from raw headers the way an attacker would, bypassing our packer. */
import { gzipSync } from 'node:zlib';

import { type Header as FullHeader, pack as tarPack } from 'tar-stream';

export type Header = Partial<FullHeader> & Pick<FullHeader, 'name'>;
export interface CraftedEntry {
  header: Header;
  body?: string;
}

/** A gzipped tarball of exactly `entries`, in order; modes default to 0644. */
export async function craft(entries: CraftedEntry[]): Promise<Buffer> {
  const archive = tarPack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
  const done = new Promise<void>((resolve) => archive.on('end', () => resolve()));
  for (const { header, body } of entries) {
    archive.entry(
      { ...header, mode: header.mode ?? 0o644, ...(body !== undefined ? { size: Buffer.byteLength(body) } : {}) },
      body ?? '',
    );
  }
  archive.finalize();
  await done;
  return gzipSync(Buffer.concat(chunks));
}

/** A regular file entry. */
export const file = (name: string, body = 'x'): CraftedEntry => ({ header: { name, type: 'file' }, body });
