/**
 * Entry point of the in-sandbox runner: `node /opt/tydra/runner.cjs [network.json]`
 * (bundled with the rest of `sandbox/runner/` into that one file, `scripts/bundle-runtime.mjs`). It only
 * wires the process to a `TaskRunner` (see `task-runner.ts`), after serving the task's network
 * endpoints when it has some (`loopback-forwarder.ts`, imported only then: it loads `node:net`).
 */
import { trackStdio } from './channel.js';
import { TaskRunner } from './task-runner.js';

trackStdio();
const runner = new TaskRunner();
process.on('uncaughtException', (error) => runner.fail(error));
process.on('unhandledRejection', (reason) => runner.fail(reason));
const network = process.argv[2];
if (network === undefined) {
  runner.listen();
} else {
  import('./loopback-forwarder.js')
    .then(async ({ forwardLoopback, readForwarderConfig }) => forwardLoopback(readForwarderConfig(network)))
    .then(
      () => runner.listen(),
      (error: unknown) => runner.fail(error),
    );
}
