/**
 * `tydra node drain ID` and `tydra node resume ID`: subcommands of the `node` role command. A
 * drained node gets no new work and what waits on it moves to other nodes; it finishes what it
 * runs (see `lib/master/node-drain.ts`). The board's pause and resume of `node.<id>` do the same.
 */
import type { Command } from 'commander';

import type { NodeControl } from '../../lib/ops/node-control.js';
import { type ClientFlags, connectTimeoutOption, jsonOption, namespaceOption, redisOption } from '../cli/common.js';
import { print } from '../cli/format.js';

type Flags = ClientFlags & { json?: boolean };

/**
 * The flags, `--redis` included wherever it stands: `node` has a `--redis` of its own, which
 * Commander gives the parent even after `drain ID`.
 */
const flagsOf = (command: Command): Flags => command.optsWithGlobals<Flags>();

async function withControl(flags: Flags, fn: (control: NodeControl) => Promise<void>): Promise<void> {
  // Loaded here, not at the top: `tydra --help` must not load Redis and BullMQ (bin/README.md).
  const { NodeControl } = await import('../../lib/ops/node-control.js');
  const control = new NodeControl({
    redis: flags.redis,
    namespace: flags.namespace,
    connectTimeoutMs: flags.connectTimeout,
  });
  try {
    await fn(control);
  } finally {
    await control.close();
  }
}

/** Adds `drain` and `resume` under the `node` command (registered by `roles.ts`). */
export function registerNodeControl(program: Command): void {
  const node = program.commands.find((command) => command.name() === 'node');
  if (node === undefined) {
    return;
  }
  node
    .command('drain')
    .description('stop sending work to node ID: what waits on it moves to other nodes; it finishes what it runs')
    .argument('<id>', 'node id (see tydra nodes)')
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(connectTimeoutOption())
    .addOption(jsonOption())
    .action((id: string, _flags: Flags, command: Command) =>
      withControl(flagsOf(command), async (control) => {
        const { moved } = await control.drain(id);
        print(
          flagsOf(command).json,
          { nodeId: id, draining: true, moved },
          `node ${id} draining; ${moved} waiting TaskInstance(s) moved`,
        );
      }),
    );
  node
    .command('resume')
    .description('give a drained node ID work again')
    .argument('<id>', 'node id (see tydra nodes)')
    .addOption(redisOption())
    .addOption(namespaceOption())
    .addOption(connectTimeoutOption())
    .addOption(jsonOption())
    .action((id: string, _flags: Flags, command: Command) =>
      withControl(flagsOf(command), async (control) => {
        await control.resume(id);
        print(flagsOf(command).json, { nodeId: id, draining: false }, `node ${id} resumed`);
      }),
    );
}
