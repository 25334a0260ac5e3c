/**
 * @internal A test seam: hooks that `Tydra.submit` awaits between its steps, so a test can force
 * a prune into the exact gap it wants (after the version is resolved and referenced, which is one
 * step, before the TaskInstance is enqueued). Kept out of
 * the public class and out of `lib/index.ts`: only tests import this module. A client without
 * hooks pays one WeakMap lookup per submit.
 */

/** Points in `submit` a test can stop at. */
export interface SubmitHooks {
  /** After the version is resolved and the reference taken, before the TaskInstance is enqueued. */
  afterReference?: () => Promise<void>;
}

const HOOKS = new WeakMap<object, SubmitHooks>();

/** @internal Installs `hooks` on `client` (replacing any it had). */
export function setSubmitHooks(client: object, hooks: SubmitHooks): void {
  HOOKS.set(client, hooks);
}

/** @internal The hooks installed on `client`, or none. */
export function submitHooksOf(client: object): SubmitHooks {
  return HOOKS.get(client) ?? {};
}
