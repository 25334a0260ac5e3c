/**
 * A TaskInstance's progress for people: one line of words (`tydra status`), and a bar redrawn in
 * place on a terminal (`tydra run`). `--json` prints the progress object as it is instead.
 */
import type { TaskProgress } from '../../lib/index.js';
import { describeProgress } from '../../queues/progress.js';

/** `42% · workunits 420/1000 done, 3 failed, 8 running`, `33% · step 2/3 (count)`, `42%`. */
export const formatProgress = describeProgress;

/** The part of a stream the bar needs: `process.stderr` in the CLI, a fake one in tests. */
export interface BarStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): boolean;
}

const BAR_WIDTH = 24;
/** Redraws at most this often: a parallel task may report thousands of times a second. */
const REDRAW_MS = 100;

/**
 * A one-line progress bar drawn with `\r` redraws. It draws only on a terminal: when the stream
 * is not a TTY (a pipe, a file, CI logs) it writes nothing at all.
 */
export class ProgressBar {
  private drawnAt = 0;
  private drawn = false;

  constructor(
    private readonly stream: BarStream,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  update(progress: TaskProgress): void {
    const at = this.now();
    if (!this.enabled || (this.drawn && at - this.drawnAt < REDRAW_MS && progress.percent < 100)) {
      return;
    }
    this.drawnAt = at;
    this.drawn = true;
    // `\x1b[K` erases what a longer previous line left on the right.
    // A terminal that reports 0 columns (a serial console, some CI pseudo-terminals) has not said
    // its width: 80, as when it says nothing.
    this.stream.write(`\r${renderBar(progress, this.stream.columns || 80)}\x1b[K`);
  }

  /** Erases the bar, so what is printed next starts on a clean line. */
  clear(): void {
    if (this.drawn) {
      this.stream.write('\r\x1b[K');
      this.drawn = false;
    }
  }
}

/** `[#########---------------] 37% · workunits …`, at most `columns - 1` characters. */
export function renderBar(progress: TaskProgress, columns: number): string {
  const filled = Math.round((Math.min(100, Math.max(0, progress.percent)) / 100) * BAR_WIDTH);
  const line = `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${formatProgress(progress)}`;
  return line.slice(0, Math.max(1, columns - 1));
}
