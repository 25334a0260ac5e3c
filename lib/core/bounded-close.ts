/**
 * What bounds a stop. A graceful close of a BullMQ Worker or Queue waits for Redis: with Redis
 * gone it never resolves (its commands wait out the outage), so every role gives its graceful
 * close a budget and force-closes (disconnects) what has not closed by then.
 *
 * The bound of every role: `close()` resolves within its drain timeout plus
 * {@link FORCE_CLOSE_MS}, whatever Redis does.
 */

/** What a stop may take beyond the drain timeout: killing sandboxes, force-closing connections. */
export const FORCE_CLOSE_MS = 5000;

/** A close step that waits for Redis, outside a drain: closing queues, quitting a connection. */
export const QUIT_MS = 1000;

/**
 * Resolves `true` once `work` settles (fulfilled or rejected) within `ms`, `false` when `ms`
 * passes first; `work` is left running either way. `cut` ends the wait early with `false`.
 */
export async function settlesWithin(work: Promise<unknown>, ms: number, cut?: Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
      ...(cut === undefined ? [] : [cut.then(() => false)]),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise plus its `resolve`, to end a wait from elsewhere (a forced stop). */
export function trigger(): { promise: Promise<void>; fire: () => void } {
  let fire = (): void => undefined;
  const promise = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { promise, fire };
}
