import { pino, type Logger as PinoLogger } from 'pino';

/**
 * The logger every component takes. It is pino's interface, so callers can pass their own
 * pino instance; children carry `component`, `nodeId` or `instanceId`.
 */
export type Logger = PinoLogger;

/**
 * The default: JSON lines on stderr at `TYDRA_LOG_LEVEL` (default `info`). Secrets never reach a
 * log line because we only ever log redacted URLs (see `redactRedisUrl`), and pino's `redact`
 * catches the usual password fields if a caller logs an options object.
 */
export function createLogger(level: string = process.env.TYDRA_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: undefined,
      redact: { paths: ['password', '*.password', 'redis', '*.redis', 'url', '*.url'], censor: '[redacted]' },
    },
    pino.destination(2),
  );
}

/** A logger that discards everything (library default when the caller passes none). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
