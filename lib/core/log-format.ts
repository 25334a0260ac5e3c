/**
 * Log formats, apart from the logger so the CLI's `--help` needs no pino (`logger.ts` re-exports
 * them).
 *
 * How log lines are written: `json` (one pino JSON object a line, what services and log
 * shippers expect), `pretty` (readable lines, see `pretty-log.ts`), or `auto`: pretty when both
 * stdout and stderr are terminals, JSON otherwise.
 */
export type LogFormat = 'auto' | 'pretty' | 'json';

export const LOG_FORMATS: readonly LogFormat[] = ['auto', 'pretty', 'json'];

/** What `auto` means for this process: pretty on a terminal, JSON when either stream is redirected. */
export function resolveLogFormat(
  format: LogFormat,
  terminal: { stdout: boolean; stderr: boolean } = {
    stdout: process.stdout.isTTY === true,
    stderr: process.stderr.isTTY === true,
  },
): 'pretty' | 'json' {
  if (format !== 'auto') {
    return format;
  }
  return terminal.stdout && terminal.stderr ? 'pretty' : 'json';
}
