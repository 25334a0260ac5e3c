import assert from 'node:assert/strict';

import { resolveLogFormat } from '../../../lib/core/logger.js';
import { prettyDestination, prettyLogLine } from '../../../lib/core/pretty-log.js';

const time = new Date(2026, 10, 30, 14, 5, 9, 42).getTime();

describe('readable log lines', () => {
  it('shows time, level, component, message and the other fields', () => {
    const line = JSON.stringify({
      level: 30,
      time,
      component: 'node',
      nodeId: 'dev-1',
      msg: 'task finished',
      ref: 'hello@8531753/greet',
      ms: 84,
    });
    assert.equal(prettyLogLine(line), '14:05:09.042 INFO  node dev-1 task finished ref=hello@8531753/greet ms=84\n');
  });

  it('quotes text with spaces, shows an error by its message, and clips long values', () => {
    const line = JSON.stringify({
      level: 50,
      time,
      msg: 'could not refresh',
      reason: 'two words',
      err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' },
      big: 'x'.repeat(500),
    });
    const shown = prettyLogLine(line);
    assert.ok(
      shown.startsWith('14:05:09.042 ERROR tydra      could not refresh reason="two words" err="boom" big=xxx'),
      shown,
    );
    assert.ok(shown.endsWith('…\n'));
    assert.ok(!shown.includes('at x'));
  });

  it('colours the level only when asked, and passes a line that is not JSON through', () => {
    const line = JSON.stringify({ level: 40, time, msg: 'careful' });
    assert.equal(prettyLogLine(line, { colours: true }), '14:05:09.042 \u001b[33mWARN \u001b[0m tydra      careful\n');
    assert.equal(prettyLogLine('not json'), 'not json\n');
  });

  it('writes each pino line through the formatter', () => {
    const written: string[] = [];
    prettyDestination({ write: (text: string) => written.push(text) }).write(
      `${JSON.stringify({ level: 30, time, msg: 'hi' })}\n`,
    );
    assert.deepEqual(written, ['14:05:09.042 INFO  tydra      hi\n']);
  });

  it('auto: readable when stdout and stderr are terminals, JSON when either is redirected', () => {
    assert.equal(resolveLogFormat('auto', { stdout: true, stderr: true }), 'pretty');
    assert.equal(resolveLogFormat('auto', { stdout: false, stderr: true }), 'json');
    assert.equal(resolveLogFormat('auto', { stdout: true, stderr: false }), 'json');
    assert.equal(resolveLogFormat('json', { stdout: true, stderr: true }), 'json');
    assert.equal(resolveLogFormat('pretty', { stdout: false, stderr: false }), 'pretty');
  });
});
