/**
 * mode `work`: a long-lived worker for one TaskInstance. It imports the module once, then runs
 * `work(unit, ctx)` for each `unit` message, one at a time and in arrival order, answering each
 * with `unit-result` or `unit-error`; a unit that throws does not end the worker. It never exits
 * by itself: `end`, or the end of stdin, makes it exit 0 once the current unit is answered.
 */
import type { NodeMessage, RunnerMessage } from '../protocol.js';
import { toError } from './channel.js';
import {
  loadExport,
  type Mode,
  type RunnerEnv,
  type StartMessage,
  taskContext,
  toJsonValue,
  type WorkContext,
} from './context.js';

type WorkFn = (unit: unknown, ctx: WorkContext) => unknown;
type UnitMessage = Extract<NodeMessage, { type: 'unit' }>;

class WorkMode implements Mode {
  private readonly queue: UnitMessage[] = [];
  private work: WorkFn | undefined;
  private busy = false;
  private ending = false;

  constructor(
    private readonly start: StartMessage,
    private readonly env: RunnerEnv,
  ) {
    loadExport<WorkFn>(start.module, 'work', '(unit, ctx) => result').then(
      (work) => {
        this.work = work;
        this.pump();
      },
      (error: unknown) => env.channel.fail(error),
    );
  }

  onMessage(message: NodeMessage): void {
    if (message.type === 'unit') {
      this.queue.push(message);
      this.pump();
    } else if (message.type === 'end') {
      this.onInputEnd();
    }
  }

  onInputEnd(): void {
    this.ending = true;
    this.pump();
  }

  private pump(): void {
    if (this.busy || this.work === undefined) {
      return;
    }
    const unit = this.queue.shift();
    if (unit === undefined) {
      if (this.ending) {
        this.env.channel.finish();
      }
      return;
    }
    this.busy = true;
    void this.run(this.work, unit).then(() => {
      this.busy = false;
      this.pump();
    });
  }

  private async run(work: WorkFn, unit: UnitMessage): Promise<void> {
    const { index } = unit;
    const ctx: WorkContext = { ...taskContext(this.start, this.env), attempt: unit.attempt, index };
    let answer: RunnerMessage;
    try {
      const value = toJsonValue(await work(unit.value, ctx), `the result of work unit ${index}`);
      answer = { type: 'unit-result', index, value };
    } catch (error) {
      const err = toError(error);
      answer = { type: 'unit-error', index, name: err.name, message: err.message, stack: err.stack };
    }
    // What the unit printed goes out first, so the node can still tell it is this unit's.
    await this.env.channel.flushOutput();
    this.env.channel.send(answer);
  }
}

export function workMode(start: StartMessage, env: RunnerEnv): Mode {
  return new WorkMode(start, env);
}
