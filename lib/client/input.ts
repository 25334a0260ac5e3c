/** A submitted input, checked once at the edge: JSON-serialisable and within the size limit. */
import { describe, InvalidOptionError } from '../core/errors.js';

/**
 * `input` as JSON text. Throws `InvalidOptionError` (never the raw `TypeError` of
 * `JSON.stringify`) for a BigInt, a circular structure, a function or `Symbol`, or JSON over
 * `maxBytes`.
 */
export function serialiseInput(input: unknown, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(input ?? null);
  } catch (error) {
    // Node's circular-structure message goes on for lines describing the path; the first says it.
    const reason = (error as Error).message.split('\n')[0];
    throw new InvalidOptionError(`Expected the input to be JSON-serialisable, got ${describe(input)}: ${reason}`, {
      cause: error,
    });
  }
  if (json === undefined) {
    throw new InvalidOptionError(`Expected the input to be JSON-serialisable, got ${describe(input)}`);
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) {
    throw new InvalidOptionError(`Expected the input to be JSON of at most ${maxBytes} bytes, got ${bytes} bytes`);
  }
  return json;
}
