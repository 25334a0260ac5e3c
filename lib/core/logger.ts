import { pino, type Logger as PinoLogger } from 'pino';

import { readEnvConfig } from './config.js';
import { InvalidOptionError } from './errors.js';
import { type LogFormat, resolveLogFormat } from './log-format.js';
import { prettyDestination } from './pretty-log.js';

/**
 * The logger every component takes. It is pino's interface, so callers can pass their own
 * pino instance; children carry `component`, `nodeId` or `instanceId`.
 */
export type Logger = PinoLogger;

export { LOG_FORMATS, type LogFormat, resolveLogFormat } from './log-format.js';

/** The levels pino knows, most verbose first, and `silent`. */
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface LoggerOptions {
  /** pino level. @defaultValue `TYDRA_LOG_LEVEL`, else `info` */
  level?: string;
  /** @defaultValue `json` */
  format?: LogFormat;
}

/**
 * The default: log lines on stderr at `TYDRA_LOG_LEVEL` (default `info`), as JSON unless the
 * format says otherwise. Secrets never reach a log line because we only ever log redacted URLs
 * (see `redactRedisUrl`), and pino's `redact` catches the usual password fields if a caller logs
 * an options object. (A bare string is taken as the level, as before formats existed.)
 */
export function createLogger(options: LoggerOptions | string = {}): Logger {
  const given = typeof options === 'string' ? { level: options } : options;
  const { level = readEnvConfig().logLevel ?? 'info', format = 'json' } = given;
  // pino's own message ("default level:bogus must be included in custom levels") names neither
  // where the level came from nor the levels it knows.
  if (!LOG_LEVELS.includes(level)) {
    const source = given.level === undefined ? 'TYDRA_LOG_LEVEL' : 'the `level` logger option';
    throw new InvalidOptionError(`Expected ${source} to be one of ${LOG_LEVELS.join(', ')}, got \`${level}\``);
  }
  const pinoOptions = {
    level,
    base: undefined,
    redact: {
      paths: ['password', '*.password', 'auth', '*.auth', 'redis', '*.redis', 'url', '*.url'],
      censor: '[redacted]',
    },
  };
  if (resolveLogFormat(format) === 'pretty') {
    const colours = process.stderr.isTTY === true && !readEnvConfig().noColor;
    return pino(pinoOptions, prettyDestination(process.stderr, { colours }));
  }
  return pino(pinoOptions, pino.destination(2));
}

/** A logger that discards everything (library default when the caller passes none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
