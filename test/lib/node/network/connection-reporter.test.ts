import assert from 'node:assert/strict';

import { connectionReporter, LOGGED_CONNECTIONS } from '../../../../lib/node/network/connection-reporter.js';
import type { ConnectionEvent } from '../../../../sandbox/launcher/network/sandbox-network.js';
import { recordingLogger } from '../../../helpers.js';

/** A reporter of one sandbox, with what it wrote to the node's log, the TaskInstance's log and the metric. */
function reporter() {
  const { logger, entries } = recordingLogger('info');
  const lines: string[] = [];
  const counted: Array<ConnectionEvent['outcome']> = [];
  const report = connectionReporter({
    instanceId: 'i-1',
    logger,
    metrics: { connection: (outcome) => counted.push(outcome) },
    log: (line) => lines.push(line),
  });
  return { ...report, entries, lines, counted };
}

const REFUSED: ConnectionEvent = { host: 'db', port: 5432, outcome: 'refused', reason: 'not allowed' };
const FAILED: ConnectionEvent = { host: 'api', port: 443, outcome: 'failed', reason: 'ECONNREFUSED' };
const OPENED: ConnectionEvent = { host: 'api', port: 443, outcome: 'opened' };

describe("connectionReporter: a sandbox's connections in the logs and the metric", () => {
  it('logs the first few of each endpoint and outcome, counts every one, and sums up the rest at close', () => {
    const { onConnection, onClose, entries, lines, counted } = reporter();
    for (let i = 0; i < 100; i += 1) {
      onConnection(REFUSED);
      onConnection(FAILED);
      onConnection(OPENED);
    }
    assert.equal(counted.length, 300, 'the metric counts every connection');
    const messages = entries.map((entry) => entry.msg);
    assert.deepEqual(messages, [
      ...Array.from({ length: LOGGED_CONNECTIONS }, () => [
        'sandbox connection refused',
        'sandbox connection failed',
        'sandbox connection opened',
      ]).flat(),
    ]);
    assert.equal(lines.length, 2 * LOGGED_CONNECTIONS, 'refusals and failures only, in the TaskInstance log');
    assert.equal(
      lines.at(-2),
      'network: connection to db:5432 refused (not allowed); more refused connections to db:5432 are counted, not logged',
    );
    onClose();
    const unlogged = 100 - LOGGED_CONNECTIONS;
    const summary = entries.at(-1) as unknown as {
      level: number;
      msg: string;
      instanceId: string;
      connections: unknown;
    };
    assert.equal(summary.msg, 'sandbox connections not logged');
    assert.equal(summary.level, 40, 'warn: refusals and failures among them');
    assert.deepEqual(summary.connections, [
      { endpoint: 'db:5432', outcome: 'refused', unlogged, total: 100 },
      { endpoint: 'api:443', outcome: 'failed', unlogged, total: 100 },
      { endpoint: 'api:443', outcome: 'opened', unlogged, total: 100 },
    ]);
    assert.equal(
      lines.at(-1),
      `network: not logged: ${unlogged} more connections to db:5432 refused (100 in all); ` +
        `${unlogged} more connections to api:443 failed (100 in all)`,
    );
    assert.equal(lines.length, 2 * LOGGED_CONNECTIONS + 1, 'one summary line');
  });

  it('says nothing at close when every connection was logged; opened ones alone are summed up at info', () => {
    const quiet = reporter();
    for (let i = 0; i < LOGGED_CONNECTIONS; i += 1) {
      quiet.onConnection(REFUSED);
    }
    const before = quiet.entries.length;
    quiet.onClose();
    assert.equal(quiet.entries.length, before);
    assert.ok(!quiet.lines.some((line) => line.startsWith('network: not logged')), quiet.lines.join(' | '));

    const busy = reporter();
    for (let i = 0; i < LOGGED_CONNECTIONS + 1; i += 1) {
      busy.onConnection(OPENED);
    }
    busy.onClose();
    const summary = busy.entries.at(-1) as unknown as { level: number; msg: string; connections: unknown };
    assert.equal(summary.msg, 'sandbox connections not logged');
    assert.equal(summary.level, 30, 'info');
    assert.deepEqual(summary.connections, [{ endpoint: 'api:443', outcome: 'opened', unlogged: 1, total: 4 }]);
    assert.deepEqual(busy.lines, [], 'opened connections never go to the TaskInstance log');
  });
});
