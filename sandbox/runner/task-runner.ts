/**
 * The runner process: reads the `start` message on stdin, then runs the mode it names: one
 * task (the default export, then exit), or a phase of a parallel task (`split`, `work`,
 * `reduce`; see the `*-mode.ts` files). Every later message goes to that mode; `cancel` aborts
 * `ctx.signal` in any mode. Imports nothing outside Node's standard library.
 */
import { LineSplitter, type NodeMessage } from '../protocol.js';
import { Channel } from './channel.js';
import type { Mode, RunnerEnv, StartMessage } from './context.js';
import { reduceMode } from './reduce-mode.js';
import { splitMode } from './split-mode.js';
import { taskMode } from './task-mode.js';
import { workMode } from './work-mode.js';

export type { ReduceContext, TaskContext, WorkContext } from './context.js';

const MODES: Record<NonNullable<StartMessage['mode']>, (start: StartMessage, env: RunnerEnv) => Mode> = {
  task: taskMode,
  split: splitMode,
  work: workMode,
  reduce: reduceMode,
};

export class TaskRunner {
  private readonly channel = new Channel();
  private readonly abort = new AbortController();
  private mode: Mode | undefined;

  listen(): void {
    const lines = new LineSplitter(Number.MAX_SAFE_INTEGER, (line) => this.onMessage(line));
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk: string) => lines.push(chunk));
    process.stdin.on('end', () => this.mode?.onInputEnd());
    if (process.env.TYDRA_WARM === '1') {
      // A pooled sandbox: tell the node this runner is loaded. The variable is the node's, not the task's.
      delete process.env.TYDRA_WARM;
      this.channel.send({ type: 'ready' });
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
      if (this.mode === undefined) {
        // Secrets (and, in a pooled sandbox, every per-TaskInstance variable): in the
        // environment before the mode imports the task module.
        Object.assign(process.env, message.env ?? {});
        const instance = message.env?.TYDRA_INSTANCE_ID;
        if (instance !== undefined) {
          // A pooled runner's environment block predates its TaskInstance, so /proc/<pid>/environ
          // does not name it: its title (/proc/<pid>/cmdline, `ps`) does instead.
          process.title = `TYDRA_INSTANCE_ID=${instance}`;
        }
        const env: RunnerEnv = { channel: this.channel, signal: this.abort.signal, stdin: process.stdin };
        this.mode = MODES[message.mode ?? 'task'](message, env);
      }
    } else {
      this.mode?.onMessage(message);
    }
  }
}
