/**
 * Entry point of a command task that has a network: `node forwarder.js <config.json> <command...>`.
 * Serves the task's endpoints on the sandbox's loopback (`loopback-forwarder.ts`), then runs the
 * command as its child, with its own stdio, and ends as the command ends.
 */
import { spawn } from 'node:child_process';

import { type ForwarderConfig, forwardLoopback, readForwarderConfig } from './loopback-forwarder.js';

function runChild(command: string[], config: ForwarderConfig): void {
  const [file = '', ...args] = [...(config.commandPrefix ?? []), ...command];
  const env = { ...process.env };
  for (const name of config.unsetEnv ?? []) {
    delete env[name];
  }
  const child = spawn(file, args, { stdio: 'inherit', env });
  child.on('error', (error) => {
    process.stderr.write(`tydra forwarder: cannot start ${file}: ${error.message}\n`);
    process.exit(127);
  });
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      // Die of the same signal, so bwrap and the node see the task's own ending.
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code ?? 1);
  });
  // The node stops a sandbox by signalling bwrap, which takes the whole namespace down; a
  // signal that reaches this process alone goes on to the task, which decides.
  for (const name of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(name, () => child.kill(name));
  }
}

const [configPath = '', ...command] = process.argv.slice(2);
const config = readForwarderConfig(configPath);
forwardLoopback(config).then(
  () => runChild(command, config),
  (error: unknown) => {
    process.stderr.write(`tydra forwarder: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(126);
  },
);
