/**
 * A user's plain alternative to tydra, as its own process: one BullMQ Worker that spawns `node -e 0`
 * (empty environment) per job and returns 1. `deployed.ts` starts it beside a `tydra node` process.
 *
 *   node dist/bench/raw-worker.js <redis url> <queue> <concurrency>
 *
 * Prints `ready` once the Worker listens; closes on SIGTERM.
 */
import { Worker } from 'bullmq';
import { execa } from 'execa';

const [url, queueName, concurrencyArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
if (url === undefined || queueName === undefined || !Number.isSafeInteger(concurrency) || concurrency <= 0) {
  throw new Error('Expected `raw-worker.js <redis url> <queue> <concurrency>`');
}
const worker = new Worker(
  queueName,
  async () => {
    await execa(process.execPath, ['-e', '0'], { extendEnv: false, env: {} });
    return 1;
  },
  { connection: { url, maxRetriesPerRequest: null }, concurrency },
);
worker.on('error', (error) => process.stderr.write(`raw worker: ${error.message}\n`));
await worker.waitUntilReady();
process.stdout.write('ready\n');
process.once('SIGTERM', () => void worker.close().then(() => process.exit(0)));
