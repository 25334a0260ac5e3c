/**
 * The runner process: reads the `start` message on stdin, then runs the mode it names: one
 * task (the default export, then exit), or a phase of a parallel task (`split`, `work`,
 * `reduce`; see the `*-mode.ts` files, imported only when named: a cold task loads none of
 * them). Every later message goes to that mode; `cancel` aborts `ctx.signal` in any mode.
 * Imports nothing outside Node's standard library.
 */
import { dirname } from 'node:path';

import { LineSplitter, type NodeMessage } from '../protocol.js';
import { Channel, InputReader } from './channel.js';
import {
  loadExport,
  type Mode,
  PACKAGE_DIR,
  type RunnerEnv,
  type StartMessage,
  type TaskContext,
  taskContext,
  toJsonValue,
} from './context.js';
import { warmUpLoader } from './task-module.js';

export type { ReduceContext, TaskContext, WorkContext } from './context.js';

type ModeStarter = (start: StartMessage, env: RunnerEnv) => Mode;
type TaskFn = (input: unknown, ctx: TaskContext) => unknown;

/** mode `task`: one call of the module's default export, its result, exit. */
function taskMode(start: StartMessage, env: RunnerEnv, onCalled: () => void): Mode {
  void (async () => {
    const fn = await loadExport<TaskFn>(start.module, 'default', '(input, ctx) => result');
    const running = fn(start.input, taskContext(start, env));
    onCalled();
    const value = await running;
    env.channel.finish({ type: 'result', value: toJsonValue(value) });
  })().catch((error: unknown) => env.channel.fail(error));
  return { onMessage: () => undefined, onInputEnd: () => undefined };
}

const PHASE_MODES: Record<Exclude<NonNullable<StartMessage['mode']>, 'task'>, () => Promise<ModeStarter>> = {
  split: async () => (await import('./split-mode.js')).splitMode,
  work: async () => (await import('./work-mode.js')).workMode,
  reduce: async () => (await import('./reduce-mode.js')).reduceMode,
};

/** Forwards to a mode that is still being imported, then to the mode itself. */
function lazyMode(load: () => Promise<ModeStarter>, start: StartMessage, env: RunnerEnv, channel: Channel): Mode {
  const early: Array<(mode: Mode) => void> = [];
  let mode: Mode | undefined;
  load().then(
    (starter) => {
      mode = starter(start, env);
      early.splice(0).forEach((replay) => replay(mode as Mode));
    },
    (error: unknown) => channel.fail(error),
  );
  const forward = (call: (target: Mode) => void): void => (mode === undefined ? void early.push(call) : call(mode));
  return {
    onMessage: (message) => forward((target) => target.onMessage(message)),
    onInputEnd: () => forward((target) => target.onInputEnd()),
  };
}

export class TaskRunner {
  private readonly channel = new Channel();
  private readonly abort = new AbortController();
  private mode: Mode | undefined;
  private input: InputReader | undefined;
  private phase = false;

  listen(): void {
    const lines = new LineSplitter(Number.MAX_SAFE_INTEGER, (line) => this.onMessage(line));
    this.input = new InputReader(
      (text) => lines.push(text),
      () => this.mode?.onInputEnd(),
    );
    if (process.env.TYDRA_WARM === '1') {
      // A pooled sandbox: tell the node this runner is loaded. The variables are the node's, not the task's.
      const module = process.env.TYDRA_WARM_MODULE;
      delete process.env.TYDRA_WARM;
      delete process.env.TYDRA_WARM_MODULE;
      if (module !== undefined) {
        warmUpLoader(`${PACKAGE_DIR}/${module}`, PACKAGE_DIR, dirname(process.argv[1] ?? ''));
      }
      this.channel.send({ type: 'ready' });
    }
    const input = this.input;
    // A task's only later message is `cancel`: the stream (which loads `net`) is opened once its
    // function was called, after a turn of the event loop, so a short task ends before paying
    // for it. A phase needs it at once.
    if (input.readUntil(() => this.mode !== undefined) && this.phase) {
      input.follow();
    }
  }

  fail(error: unknown): void {
    this.channel.fail(error);
  }

  private onMessage(line: string): void {
    const message = JSON.parse(line) as NodeMessage;
    if (message.type === 'cancel') {
      this.abort.abort(new Error(message.reason));
    } else if (message.type === 'start') {
      if (this.mode === undefined && this.input !== undefined) {
        // Secrets (and, in a pooled sandbox, every per-TaskInstance variable): in the
        // environment before the mode imports the task module.
        Object.assign(process.env, message.env ?? {});
        const instance = message.env?.TYDRA_INSTANCE_ID;
        if (instance !== undefined) {
          // A pooled runner's environment block predates its TaskInstance, so /proc/<pid>/environ
          // does not name it: its title (/proc/<pid>/cmdline, `ps`) does instead.
          process.title = `TYDRA_INSTANCE_ID=${instance}`;
        }
        // Before any of the task's code: the node's proof that bwrap set the sandbox up (a task
        // can print what bwrap prints when it fails, but cannot take this message back).
        this.channel.send({ type: 'started' });
        const env: RunnerEnv = { channel: this.channel, signal: this.abort.signal, stdin: this.input };
        const phase = message.mode === undefined || message.mode === 'task' ? undefined : PHASE_MODES[message.mode];
        this.phase = phase !== undefined;
        const input = this.input;
        this.mode =
          phase === undefined
            ? taskMode(message, env, () => setImmediate(() => input.follow()))
            : lazyMode(phase, message, env, this.channel);
      }
    } else {
      this.mode?.onMessage(message);
    }
  }
}
