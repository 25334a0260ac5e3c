/**
 * Entry point of the in-sandbox runner: `node /opt/tydra/runner/main.js`. It only wires the
 * process to a `TaskRunner`; see `task-runner.ts`.
 */
import { TaskRunner } from './task-runner.js';

const runner = new TaskRunner();
process.on('uncaughtException', (error) => runner.fail(error));
process.on('unhandledRejection', (reason) => runner.fail(reason));
runner.listen();
