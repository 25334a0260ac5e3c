/**
 * Readable log lines for a terminal, from pino's JSON lines: time, level, component, message and
 * a few fields (`12:04:31.207 INFO  node dev-1  task finished  ref=hello@8531753/greet ms=84`).
 * A tiny formatter instead of pino-pretty (no new dependency): it sits as pino's destination and
 * rewrites each line before it reaches the terminal. Services keep JSON (see `createLogger`).
 */

/** pino's numeric levels and how a terminal shows them. */
const LEVELS: Record<number, { label: string; colour: string }> = {
  10: { label: 'TRACE', colour: '90' },
  20: { label: 'DEBUG', colour: '90' },
  30: { label: 'INFO ', colour: '32' },
  40: { label: 'WARN ', colour: '33' },
  50: { label: 'ERROR', colour: '31' },
  60: { label: 'FATAL', colour: '35' },
};

/** Fields that make up the head of the line, not its tail. */
const HEAD_FIELDS = new Set(['level', 'time', 'msg', 'component', 'nodeId', 'pid', 'hostname']);

/** A field's value longer than this is cut: a line, not a dump. */
const MAX_VALUE_CHARS = 160;

function clip(text: string): string {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text;
}

function showValue(value: unknown): string {
  if (typeof value === 'string') {
    return clip(/^[^\s"=]+$/.test(value) ? value : JSON.stringify(value));
  }
  // pino serialises errors as { type, message, stack }: the message is what a reader needs.
  if (typeof value === 'object' && value !== null && 'message' in value && typeof value.message === 'string') {
    return clip(JSON.stringify(value.message));
  }
  return clip(JSON.stringify(value) ?? String(value));
}

function timeOfDay(time: unknown): string {
  const date = typeof time === 'number' ? new Date(time) : new Date();
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

/**
 * One pino JSON line as a readable line (with a trailing newline). A line that is not JSON is
 * passed through unchanged: nothing is lost if something else writes to the stream.
 */
export function prettyLogLine(line: string, options: { colours?: boolean } = {}): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  if (typeof entry !== 'object' || entry === null) {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = LEVELS[typeof entry.level === 'number' ? entry.level : 30] ?? { label: 'LOG  ', colour: '0' };
  const label = options.colours ? `\u001b[${level.colour}m${level.label}\u001b[0m` : level.label;
  const component = [entry.component, entry.nodeId].filter((part) => typeof part === 'string').join(' ') || 'tydra';
  const fields = Object.entries(entry)
    .filter(([key, value]) => !HEAD_FIELDS.has(key) && value !== undefined)
    .map(([key, value]) => `${key}=${showValue(value)}`);
  const message = typeof entry.msg === 'string' ? entry.msg : '';
  return `${[timeOfDay(entry.time), label, component.padEnd(10), message, ...fields].join(' ').trimEnd()}\n`;
}

/** A pino destination that writes each line through {@link prettyLogLine} to `out`. */
export function prettyDestination(
  out: { write(text: string): unknown },
  options: { colours?: boolean } = {},
): { write(line: string): void } {
  return {
    write(line: string): void {
      out.write(prettyLogLine(line.replace(/\n$/, ''), options));
    },
  };
}
