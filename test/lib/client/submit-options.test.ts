import assert from 'node:assert/strict';

import { checkSubmitOptions, runAtOf, scheduleJobOptions } from '../../../lib/client/submit-options.js';
import { InvalidOptionError } from '../../../lib/core/errors.js';
import { taskEnvSchema } from '../../../lib/core/task-env.js';
import { environmentArgs } from '../../../sandbox/launcher/bwrap-args.js';
import { backoffValue, collectEnv } from '../../../bin/cli/parse.js';

const NOW = Date.parse('2030-01-01T00:00:00Z');

function rejects(options: object, message: string | RegExp): void {
  assert.throws(
    () => checkSubmitOptions(options),
    (error: Error) => {
      assert.ok(error instanceof InvalidOptionError, `${error.name}: ${error.message}`);
      if (typeof message === 'string') {
        assert.equal(error.message, message);
      } else {
        assert.match(error.message, message);
      }
      return true;
    },
  );
}

describe('submit options', () => {
  it('accepts each option in its range and compiles priority and delay into BullMQ job options', () => {
    const checked = checkSubmitOptions({ priority: 2_097_152, delayMs: 1500, key: 'order-1234' });
    const runAt = runAtOf(checked, NOW);
    assert.equal(runAt, NOW + 1500);
    assert.deepEqual(scheduleJobOptions({ priority: 2_097_152, runAt }, NOW + 500), {
      priority: 2_097_152,
      delay: 1000,
    });
    assert.equal(runAtOf(checkSubmitOptions({ at: new Date(NOW + 10) }), NOW), NOW + 10);
    assert.equal(runAtOf(checkSubmitOptions({ at: '2030-01-01T01:00:00+01:00' }), NOW - 1), NOW);
    assert.equal(runAtOf(checkSubmitOptions({ delayMs: 0 }), NOW), undefined);
  });

  it('names the option, the expectation and what it got', () => {
    rejects({ priority: 2_097_153 }, /^Expected the `priority` submit option to be valid \(an integer from 1/);
    rejects({ priority: 1.5 }, /`priority`.*got `1\.5` \(number\)$/);
    rejects({ delayMs: -1 }, 'Expected the `delayMs` submit option to be valid (an integer >= 0), got `-1` (number)');
    for (const at of ['tomorrow', '2030-01-01T00:00:00']) {
      rejects(
        { at },
        `Expected the \`at\` submit option to be valid (a Date or an ISO 8601 date-time string with Z or an offset), got \`"${at}"\` (string)`,
      );
    }
    rejects({ key: '' }, /^Expected the `key` submit option to be valid \(a string of 1 to 256 characters\)/);
    rejects({ key: 'a\nb' }, /^Expected the `key` submit option to be valid \(a string without control characters\)/);
    rejects({ backoff: { type: 'linear', delayMs: 5 } }, /^Expected the `backoff.type` submit option to be valid/);
    rejects({ backoff: { type: 'fixed' } }, /^Expected the `backoff.delayMs` submit option to be valid/);
    rejects({ delayMs: 5, at: new Date(NOW) }, 'Expected either the `delayMs` or the `at` submit option, got both');
    assert.throws(() => runAtOf(checkSubmitOptions({ at: new Date(NOW - 1) }), NOW), {
      message:
        'Expected the `at` submit option to be in the future, got 2029-12-31T23:59:59.999Z (now is 2030-01-01T00:00:00.000Z)',
    });
  });

  it('checks env names, values and total size without echoing a value', () => {
    rejects(
      { env: { LD_PRELOAD: '/x.so' } },
      /^Expected the `env.LD_PRELOAD` submit option to be a name tydra does not set/,
    );
    rejects({ env: { NODE_OPTIONS: '--inspect' } }, /`env.NODE_OPTIONS`.*got the name `NODE_OPTIONS`$/);
    rejects({ env: { '1ABC': 'x' } }, /`env.1ABC` submit option to be a name matching/);
    rejects({ env: { ['A'.repeat(65)]: 'x' } }, /submit option to be a name matching/);
    rejects({ env: { NUM: 5 } }, 'Expected the `env.NUM` submit option to be a string, got a number');
    rejects(
      { env: { SECRETISH: 'hunter2\0' } },
      'Expected the `env.SECRETISH` submit option to be a string without NUL characters, got a string of 8 bytes (not shown)',
    );
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, n) => [`V${n}`, 'x'.repeat(4000)]));
    rejects({ env: many }, 'Expected the `env` submit option to hold at most 65536 bytes of names and values in all');
    assert.ok(taskEnvSchema.safeParse({ A: 'x'.repeat(4096), B_2: '' }).success);
  });

  it("puts tydra's variables after the submission's, so they always win in bwrap's argv", () => {
    const args = environmentArgs({ GREETING: 'hi', PATH: '/evil' });
    const paths = args.flatMap((arg, i) => (arg === '--setenv' && args[i + 1] === 'PATH' ? [args[i + 2]] : []));
    assert.equal(paths.at(-1), '/usr/local/bin:/usr/bin:/bin');
    assert.deepEqual(args.slice(0, 4), ['--clearenv', '--setenv', 'GREETING', 'hi']);
  });

  it('parses the CLI flags --env NAME=value (repeatable) and --backoff TYPE:MS', () => {
    assert.deepEqual(collectEnv('URL=a=b', collectEnv('EMPTY=', {})), { EMPTY: '', URL: 'a=b' });
    assert.throws(() => collectEnv('=x', {}), { message: 'Expected NAME=value, got `=x`' });
    assert.throws(() => collectEnv('NOVALUE', {}), { message: 'Expected NAME=value, got `NOVALUE`' });
    assert.deepEqual(backoffValue('exponential:1000'), { type: 'exponential', delayMs: 1000 });
    assert.deepEqual(backoffValue('fixed:0'), { type: 'fixed', delayMs: 0 });
    assert.throws(() => backoffValue('linear:5'), { message: 'Expected exponential:MS or fixed:MS, got `linear:5`' });
  });
});
