/**
 * mode `reduce`: `reduce(results, input, ctx)` where `results` is an async iterable over the work
 * results in split order, fed by `item` messages and ended by `items-end`. At most a bounded
 * number wait in memory (`ItemBuffer` pauses stdin), so the results are never all held at once.
 */
import { ItemBuffer } from './item-buffer.js';
import {
  loadExport,
  type Mode,
  type ReduceContext,
  type RunnerEnv,
  type StartMessage,
  taskContext,
  toJsonValue,
} from './context.js';

type ReduceFn = (results: AsyncIterable<unknown>, input: unknown, ctx: ReduceContext) => unknown;

export function reduceMode(start: StartMessage, env: RunnerEnv): Mode {
  const items = new ItemBuffer(env.stdin);
  let complete = false;
  void (async () => {
    const reduce = await loadExport<ReduceFn>(start.module, 'reduce', '(results, input, ctx) => result');
    const ctx: ReduceContext = { ...taskContext(start, env), failures: start.failures ?? [] };
    const value = await reduce(items, start.input, ctx);
    env.channel.finish({ type: 'result', value: toJsonValue(value) });
  })().catch((error: unknown) => env.channel.fail(error));
  return {
    onMessage: (message) => {
      if (message.type === 'item') {
        items.push(message.value);
      } else if (message.type === 'items-end') {
        complete = true;
        items.end();
      }
    },
    onInputEnd: () => {
      if (!complete) {
        items.end(new Error('the node stopped sending work results before their end (stdin closed)'));
      }
    },
  };
}
