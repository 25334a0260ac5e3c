/** mode `task`: one call of the module's default export, its result, exit. */
import { type Mode, type RunnerEnv, type StartMessage, type TaskContext, taskContext } from './context.js';
import { loadExport } from './load-module.js';
import { toJsonValue } from './values.js';

type TaskFn = (input: unknown, ctx: TaskContext) => unknown;

export function taskMode(start: StartMessage, env: RunnerEnv): Mode {
  void (async () => {
    const fn = await loadExport<TaskFn>(start.module, 'default', '(input, ctx) => result');
    const value = await fn(start.input, taskContext(start, env));
    env.channel.finish({ type: 'result', value: toJsonValue(value) });
  })().catch((error: unknown) => env.channel.fail(error));
  return { onMessage: () => undefined, onInputEnd: () => undefined };
}
