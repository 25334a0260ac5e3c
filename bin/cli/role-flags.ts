/**
 * Flags the long-running roles share: how they log, and who may use the dashboard. The logger
 * (pino) is imported when a role starts, not when `--help` is printed.
 */
import { InvalidArgumentError, Option } from 'commander';

import { InvalidOptionError } from '../../lib/core/errors.js';
import { LOG_FORMATS, type LogFormat } from '../../lib/core/log-format.js';
import type { Logger } from '../../lib/core/logger.js';
import { dashboardUsersFromEnv } from '../../lib/ops/dashboard-credentials.js';
import type { DashboardUser } from '../../lib/ops/dashboard-options.js';
import { env } from './common.js';

function logFormat(text: string): LogFormat {
  const format = LOG_FORMATS.find((choice) => choice === text);
  if (format === undefined) {
    throw new InvalidArgumentError(`Expected one of ${LOG_FORMATS.join(', ')}, got \`${text}\``);
  }
  return format;
}

export const logFormatOption = () =>
  new Option(
    '--log-format <format>',
    'log lines on stderr: auto (readable on a terminal, JSON when redirected), pretty or json (env TYDRA_LOG_FORMAT)',
  )
    .argParser(logFormat)
    .default(env.logFormat ?? 'auto');

/**
 * The logger of a role; `--log-format` (or TYDRA_LOG_FORMAT) decides JSON or readable lines.
 * Commander checks the flag; only the environment's default can reach here unchecked.
 */
export async function roleLogger(flags: { logFormat: string }): Promise<Logger> {
  const format = LOG_FORMATS.find((choice) => choice === flags.logFormat);
  if (format === undefined) {
    throw new InvalidOptionError(
      `Expected TYDRA_LOG_FORMAT to be one of ${LOG_FORMATS.join(', ')}, got \`${flags.logFormat}\``,
    );
  }
  const { createLogger } = await import('../../lib/core/logger.js');
  return createLogger({ format });
}

export const insecureNoAuthOption = () =>
  new Option(
    '--insecure-no-auth',
    'serve the dashboard beyond loopback WITHOUT authentication (refused otherwise when no credentials are set)',
  );

export const DASHBOARD_AUTH_HELP =
  'dashboard users (basic auth): admin from env TYDRA_DASHBOARD_USER with TYDRA_DASHBOARD_PASSWORD or ' +
  'TYDRA_DASHBOARD_PASSWORD_FILE; read-only from TYDRA_DASHBOARD_READONLY_USER with TYDRA_DASHBOARD_READONLY_PASSWORD ' +
  'or TYDRA_DASHBOARD_READONLY_PASSWORD_FILE';

/** The dashboard users the environment sets (undefined: none, an open dashboard). */
export async function dashboardAuthFromEnv(): Promise<DashboardUser[] | undefined> {
  const users = await dashboardUsersFromEnv(env);
  return users.length > 0 ? users : undefined;
}
