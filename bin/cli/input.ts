/**
 * The input of `tydra run`: `--input JSON` or `--input-file FILE`, which must be UTF-8. Node
 * decodes both leniently (bad bytes become U+FFFD), which would hand a task text the caller never
 * wrote; so the bytes are checked, and the first bad one is named by its offset.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

import { InvalidOptionError } from '../../lib/core/errors.js';

export async function readInput(flags: { input?: string; inputFile?: string }): Promise<unknown> {
  let text = 'null';
  if (flags.inputFile !== undefined) {
    text = decodeUtf8(await readInputFile(flags.inputFile), `the file ${flags.inputFile}`);
  } else if (flags.input !== undefined) {
    text = flags.input.includes('\uFFFD') ? decodeUtf8(rawArgument(flags.input), '--input') : flags.input;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InvalidOptionError(`Expected the input to be JSON, got a parse error: ${(error as Error).message}`);
  }
}

async function readInputFile(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    // `ENOENT: no such file or directory, open '/x'`: the code and its words, the path is said once.
    const reason = (error as Error).message.split(',')[0];
    throw new InvalidOptionError(`Expected a readable --input-file, got \`${file}\` (${reason})`);
  }
}

export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = invalidUtf8Offset(bytes);
    const byte = (bytes[offset] ?? 0).toString(16).padStart(2, '0');
    throw new InvalidOptionError(
      `Expected ${what} to be UTF-8, got an invalid byte 0x${byte} at byte offset ${offset}`,
    );
  }
}

/**
 * Offset of the first byte that does not start valid UTF-8. The lossy decoding, encoded again,
 * equals the input up to the first bad sequence; that sequence starts at the last boundary
 * before the first difference where the prefix still decodes (at most 3 bytes back).
 */
export function invalidUtf8Offset(bytes: Uint8Array): number {
  const lossy = Buffer.from(Buffer.from(bytes).toString('utf8'), 'utf8');
  let differs = 0;
  while (differs < bytes.length && bytes[differs] === lossy[differs]) {
    differs += 1;
  }
  const fatal = new TextDecoder('utf-8', { fatal: true });
  for (let offset = differs; offset >= Math.max(0, differs - 3); offset -= 1) {
    try {
      fatal.decode(bytes.subarray(0, offset));
      return offset;
    } catch {
      // A prefix that ends inside a sequence: step back.
    }
  }
  return differs;
}

/**
 * The bytes of `--input` as the kernel passed them (`/proc/self/cmdline`): `process.argv` holds
 * them already decoded. Falls back to the decoded text, whose U+FFFD is then taken as written.
 */
function rawArgument(decoded: string): Uint8Array {
  let cmdline: Buffer;
  try {
    cmdline = readFileSync('/proc/self/cmdline');
  } catch {
    return Buffer.from(decoded);
  }
  for (let start = 0; start < cmdline.length;) {
    const end = cmdline.indexOf(0, start) === -1 ? cmdline.length : cmdline.indexOf(0, start);
    const arg = cmdline.subarray(start, end);
    const value = arg.subarray(0, 8).toString('latin1') === '--input=' ? arg.subarray(8) : arg;
    if (value.toString('utf8') === decoded) {
      return value;
    }
    start = end + 1;
  }
  return Buffer.from(decoded);
}
