/**
 * Writes a run's progress and log lines to its node job and to its TaskInstance without blocking
 * the task: log lines in order (each write is chained), progress coalesced (`progress-writer.ts`:
 * only the latest value, at most one write per period), and `finish` waits for both.
 *
 * A run keeps at most `MAX_RUN_LOG_LINES` lines (a chatty task must not fill Redis); the lines
 * past that are counted, and `finish` ends both logs with how many were not kept.
 */
import type { Job, Queue } from 'bullmq';

import { MAX_RUN_LOG_LINES } from '../../queues/node.js';
import { percentOf, type TaskProgress } from '../../queues/progress.js';
import { maskSecrets, maskSecretsIn } from '../core/secret-box.js';
import { ProgressWriter } from './progress-writer.js';

/**
 * Lines the TaskInstance's log keeps: one run's lines and its note, plus room for the lines the
 * master writes around runs (dispatched, re-routed).
 */
const TASK_INSTANCE_KEEP_LOGS = MAX_RUN_LOG_LINES + 1 + 20;

export class RedisMirror {
  private chain: Promise<unknown> = Promise.resolve();
  private readonly progressWriter = new ProgressWriter<number | Record<string, unknown>>((reported) => {
    const value = this.maskValue(reported);
    const progress: TaskProgress = { percent: percentOf(value), value };
    return Promise.all([this.job.updateProgress(value), this.tasksQueue.updateJobProgress(this.instanceId, progress)]);
  });
  private lines = 0;
  /** Secret values of the run: masked as `***` in every line before it is written. */
  private secrets: readonly string[] = [];

  constructor(
    private readonly job: Job,
    private readonly tasksQueue: Queue,
    private readonly instanceId: string,
  ) {}

  log(line: string): void {
    this.lines += 1;
    if (this.lines <= MAX_RUN_LOG_LINES) {
      const masked = maskSecrets(line, this.secrets);
      this.enqueue(() => this.both(masked));
    }
  }

  /** Masks these secret values in every later line and in `maskError`. */
  mask(values: readonly string[]): void {
    this.secrets = values;
  }

  /** A JSON value (progress, result) with the secret values masked in its strings. */
  maskValue<T>(value: T): T {
    return this.secrets.length === 0 ? value : (maskSecretsIn(value, this.secrets) as T);
  }

  /** Masks the secret values in an error's message and stacks, in place (the task chose their text). */
  maskError(error: unknown): void {
    if (this.secrets.length === 0 || !(error instanceof Error)) {
      return;
    }
    const fields = error as unknown as Record<string, unknown>;
    for (const field of ['message', 'stack', 'remoteStack']) {
      const text = fields[field];
      if (typeof text === 'string') {
        Object.defineProperty(error, field, {
          value: maskSecrets(text, this.secrets),
          writable: true,
          configurable: true,
        });
      }
    }
  }

  /**
   * The task's own value on the node job; `{ percent, value }` on the TaskInstance (see
   * `queues/progress.ts`). Coalesced: a value superseded before its turn is never written.
   */
  progress(reported: number | Record<string, unknown>): void {
    this.progressWriter.push(reported);
  }

  /**
   * Waits for every write, the latest progress value's included; then, if lines were dropped, says
   * how many (once, at the end of the run).
   */
  async finish(): Promise<void> {
    const dropped = this.lines - MAX_RUN_LOG_LINES;
    if (dropped > 0) {
      this.lines = MAX_RUN_LOG_LINES;
      this.enqueue(() => this.both(`… ${dropped.toLocaleString('en-US')} more lines not kept`));
    }
    await Promise.all([this.chain, this.progressWriter.flush()]);
  }

  private both(line: string): Promise<unknown> {
    // The node job's own keepLogs (NODE_JOB_OPTIONS) trims its log; the TaskInstance's is trimmed here.
    return Promise.all([this.job.log(line), this.tasksQueue.addJobLog(this.instanceId, line, TASK_INSTANCE_KEEP_LOGS)]);
  }

  private enqueue(write: () => Promise<unknown>): void {
    this.chain = this.chain.then(write).catch(() => undefined);
  }
}
