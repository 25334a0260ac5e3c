#!/usr/bin/env node
/**
 * The `tydra` CLI. Thin by design: parse strictly, map flags to library options, call the
 * library, clean up. Client commands take `--redis` (env TYDRA_REDIS_URL), `--connect-timeout`
 * and `--json`; roles take `--redis`. Defaults and validation belong to the options modules.
 */
import { readFileSync } from 'node:fs';

import { Command } from 'commander';

import { exitSoon } from './cli/common.js';
import { registerClientCommands } from './commands/client.js';
import { registerHistoryCommands } from './commands/history.js';
import { registerScheduleCommands } from './commands/schedule.js';
import { registerLogs } from './commands/logs.js';
import { registerNodeControl } from './commands/node-control.js';
import { registerSecretCommands } from './commands/secret.js';
import { registerRoles } from './commands/roles.js';

const packageJson = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

const program = new Command('tydra')
  .description('A distributed task runner on Redis and BullMQ: every task in its own bubblewrap sandbox.')
  .version(packageJson.version)
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerRoles(program);
registerNodeControl(program);
registerClientCommands(program);
registerHistoryCommands(program);
registerScheduleCommands(program);
registerLogs(program);
registerSecretCommands(program);

program.parseAsync().then(
  () => exitSoon(),
  (error: unknown) => {
    // One line: library errors (InvalidOptionError, RedisUnreachableError, …) carry the whole story.
    process.stderr.write(`tydra: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = process.exitCode || 1;
    exitSoon();
  },
);
