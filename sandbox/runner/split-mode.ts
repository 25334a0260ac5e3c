/**
 * mode `split`: `split(input, ctx)` returns an array, an iterable or an async iterable of work
 * units. Each unit costs one credit; at zero credit the iterator is not pulled (the node is
 * behind), so a split of millions of units never runs ahead of what the node can enqueue.
 * Ends with `result`: the number of units.
 */
import { Credits } from './credits.js';
import {
  loadExport,
  type Mode,
  type RunnerEnv,
  type StartMessage,
  type TaskContext,
  taskContext,
  toJsonUnit,
} from './context.js';

type SplitFn = (input: unknown, ctx: TaskContext) => unknown;

export function splitMode(start: StartMessage, env: RunnerEnv): Mode {
  const credits = new Credits();
  void (async () => {
    const split = await loadExport<SplitFn>(start.module, 'split', '(input, ctx) => units');
    const units = unitIterator(await split(start.input, taskContext(start, env)), start.module);
    let count = 0;
    for (;;) {
      await credits.take();
      const next = await units.next();
      if (next.done === true) {
        break;
      }
      const value = toJsonUnit(await next.value, `work unit ${count} of split (${start.module})`);
      env.channel.send({ type: 'unit', value });
      count += 1;
    }
    env.channel.finish({ type: 'result', value: count });
  })().catch((error: unknown) => env.channel.fail(error));
  return {
    onMessage: (message) => {
      if (message.type === 'credit') {
        credits.add(message.count);
      }
    },
    onInputEnd: () => undefined,
  };
}

/** An iterator over what split returned; a TypeError for anything else. */
function unitIterator(units: unknown, module: string): Iterator<unknown> | AsyncIterator<unknown> {
  if (typeof units === 'object' && units !== null) {
    if (Symbol.asyncIterator in units && typeof units[Symbol.asyncIterator] === 'function') {
      return (units as AsyncIterable<unknown>)[Symbol.asyncIterator]();
    }
    if (Symbol.iterator in units && typeof units[Symbol.iterator] === 'function') {
      return (units as Iterable<unknown>)[Symbol.iterator]();
    }
  }
  const got = units === null ? 'null' : typeof units;
  throw new TypeError(
    `Expected split (${module}) to return an array, an iterable or an async iterable of work units, got ${got}`,
  );
}
