/** Writing a stream of lines into a sandbox's stdin at the pace it reads them. */
import type { Writable } from 'node:stream';

/**
 * Writes `text`; when the pipe is full, resolves only once it drained. Resolves false when
 * stdin is closed (the sandbox ended, or stopped reading for good): stop writing then.
 */
export function writeLine(stdin: Writable, text: string): Promise<boolean> {
  if (stdin.destroyed || stdin.writableEnded) {
    return Promise.resolve(false);
  }
  if (stdin.write(text)) {
    return Promise.resolve(true);
  }
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      stdin.off('drain', onDrain);
      stdin.off('close', onClose);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    stdin.on('drain', onDrain);
    stdin.on('close', onClose);
  });
}

/**
 * Writes one line per item of `items` (never more than the pipe holds ahead of the reader), then
 * `last` if given, then ends stdin. Stops pulling from `items` once stdin is closed.
 */
export async function writeLines(
  stdin: Writable,
  items: AsyncIterable<unknown>,
  line: (item: unknown) => string,
  last?: string,
): Promise<void> {
  for await (const item of items) {
    if (!(await writeLine(stdin, line(item)))) {
      return;
    }
  }
  if (last !== undefined && !(await writeLine(stdin, last))) {
    return;
  }
  stdin.end();
}
