/**
 * The dashboard's users as the environment gives them: an admin (`TYDRA_DASHBOARD_USER` with
 * `TYDRA_DASHBOARD_PASSWORD` or `…_PASSWORD_FILE`) and a read-only user (`TYDRA_DASHBOARD_READONLY_…`).
 * Half a pair is an error naming the missing half: a typo must not leave a dashboard open.
 * Passwords read from files (mounted secrets) lose their trailing newline; neither passwords nor
 * file contents ever appear in a message.
 */
import { readFile } from 'node:fs/promises';

import type { EnvConfig } from '../core/config.js';
import { InvalidOptionError } from '../core/errors.js';
import type { DashboardRole, DashboardUser } from './dashboard-options.js';

interface RoleVariables {
  role: DashboardRole;
  prefix: string;
  user: string | undefined;
  password: string | undefined;
  passwordFile: string | undefined;
}

function roleVariables(env: EnvConfig): RoleVariables[] {
  return [
    {
      role: 'admin',
      prefix: 'TYDRA_DASHBOARD_',
      user: env.dashboardUser,
      password: env.dashboardPassword,
      passwordFile: env.dashboardPasswordFile,
    },
    {
      role: 'read-only',
      prefix: 'TYDRA_DASHBOARD_READONLY_',
      user: env.dashboardReadOnlyUser,
      password: env.dashboardReadOnlyPassword,
      passwordFile: env.dashboardReadOnlyPasswordFile,
    },
  ];
}

async function readPasswordFile(variable: string, path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'an error';
    throw new InvalidOptionError(`Expected ${variable} to name a readable file, got \`${path}\` (${code})`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password === '') {
    throw new InvalidOptionError(`Expected ${variable} to name a file holding a password, got an empty \`${path}\``);
  }
  return password;
}

async function userOf(vars: RoleVariables): Promise<DashboardUser | undefined> {
  const userVar = `${vars.prefix}USER`;
  const passwordVar = `${vars.prefix}PASSWORD`;
  const fileVar = `${vars.prefix}PASSWORD_FILE`;
  if (vars.password !== undefined && vars.passwordFile !== undefined) {
    throw new InvalidOptionError(`Expected one of ${passwordVar} and ${fileVar}, got both`);
  }
  const hasPassword = vars.password !== undefined || vars.passwordFile !== undefined;
  if (vars.user === undefined) {
    if (hasPassword) {
      const given = vars.password !== undefined ? passwordVar : fileVar;
      throw new InvalidOptionError(`Expected ${userVar} with ${given}, got ${given} alone: set ${userVar}`);
    }
    return undefined;
  }
  if (!hasPassword) {
    throw new InvalidOptionError(
      `Expected ${passwordVar} (or ${fileVar}) with ${userVar}, got ${userVar} alone: set ${passwordVar}`,
    );
  }
  const password = vars.password ?? (await readPasswordFile(fileVar, vars.passwordFile ?? ''));
  return { user: vars.user, password, role: vars.role };
}

/** The users the environment defines (none: an open dashboard, which only loopback allows). */
export async function dashboardUsersFromEnv(env: EnvConfig): Promise<DashboardUser[]> {
  const users: DashboardUser[] = [];
  for (const vars of roleVariables(env)) {
    const user = await userOf(vars);
    if (user !== undefined) {
      users.push(user);
    }
  }
  return users;
}
