#!/usr/bin/env -S node --max-semi-space-size=1 --v8-pool-size=1
/**
 * The `tydra` CLI. Thin by design: parse strictly, map flags to library options, call the
 * library, clean up. Client commands take `--redis` (env TYDRA_REDIS_URL), `--connect-timeout`
 * and `--json`; roles take `--redis`. Defaults and validation belong to the options modules.
 *
 * Why the V8 flags in the shebang: loading BullMQ, ioredis and the rest grows V8's young
 * generation to 32 MiB, and V8 gives that back only when its memory reducer runs, which the
 * timers of an idle node or master (heartbeats, BullMQ's blocking calls) can put off for minutes;
 * and each of V8's four background threads keeps its own malloc arena. A 1 MiB semi-space and
 * one background thread keep an idle node near 70 MiB instead of 93 (docs/benchmarks.md). These
 * processes wait on Redis and sandboxes, so more scavenges and GC work on one helper thread cost
 * nothing measurable; run `node dist/bin/tydra.js` (no flags) to choose otherwise. `env -S` needs
 * GNU coreutils 8.30+ or a BSD/macOS env.
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
