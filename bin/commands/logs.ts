/**
 * `tydra logs ID [--follow]`: prints a TaskInstance's log lines (see `lib/ops/task-logs.ts`);
 * `--follow` keeps printing new ones until the TaskInstance has ended; `--json` prints each line
 * as a JSON string on a line of its own (NDJSON), so a line a task printed cannot pass for two.
 */
import type { Command } from 'commander';

import { type ClientFlags, connectTimeoutOption, namespaceOption, redisOption } from '../cli/common.js';

type Flags = ClientFlags & { follow?: boolean; json?: boolean };

export function registerLogs(program: Command): void {
  program
    .command('logs')
    .description("print a TaskInstance's log lines and how it ended; --follow prints new ones until it has ended")
    .argument('<id>', 'TaskInstance id')
    .option('-f, --follow', 'keep printing new lines until the TaskInstance has ended')
    .option('--json', 'print each line as a JSON string, one per line (NDJSON), with --follow too')
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(connectTimeoutOption())
    .action(async (id: string, flags: Flags) => {
      // Loaded here, not at the top: `tydra --help` must not load Redis and BullMQ (bin/README.md).
      const { TaskLogs } = await import('../../lib/ops/task-logs.js');
      const logs = new TaskLogs({
        redis: flags.redis,
        namespace: flags.namespace,
        connectTimeoutMs: flags.connectTimeout,
      });
      try {
        for await (const line of logs.lines(id, { follow: flags.follow === true })) {
          process.stdout.write(`${flags.json === true ? JSON.stringify(line) : line}\n`);
        }
      } finally {
        await logs.close();
      }
    });
}
