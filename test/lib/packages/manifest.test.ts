import assert from 'node:assert/strict';

import { ManifestError } from '../../../lib/core/errors.js';
import {
  declaredSecrets,
  fieldPath,
  parallelEntries,
  parseManifest,
  requiredFileFields,
  requiredFiles,
  taskKind,
  type ParallelTaskSpec,
} from '../../../lib/packages/manifest.js';

/** The example manifest of the design (PARALLEL-DESIGN.md), with the tasks its sequence names. */
const DESIGN_EXAMPLE = {
  name: 'wordcount',
  tasks: {
    count: { kind: 'parallel', module: 'count.js', attempts: 2, maxFailedWorkunits: 0 },
    'count-py': {
      kind: 'parallel',
      split: { command: ['python3', 'split.py'] },
      work: { command: ['python3', 'work.py'] },
      reduce: { command: ['python3', 'reduce.py'] },
    },
    report: { kind: 'sequence', steps: ['fetch', 'count', { all: ['chart', 'summary'] }] },
    fetch: { module: 'fetch.js' },
    chart: { kind: 'simple', command: ['python3', 'chart.py'] },
    summary: { module: 'summary.js' },
  },
};

function parse(manifest: unknown) {
  return parseManifest(JSON.stringify(manifest));
}

/** Asserts that `manifest` is refused with a ManifestError naming `field` (in `.field` and in the message). */
function assertRejected(manifest: unknown, field: string, message?: RegExp): void {
  assert.throws(
    () => parse(manifest),
    (error: unknown) => {
      assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
      assert.equal(error.field, field);
      assert.ok(error.message.includes(`\`${field}\``), `message should name ${field}: ${error.message}`);
      if (message !== undefined) {
        assert.match(error.message, message);
      }
      return true;
    },
  );
}

function withTasks(tasks: Record<string, unknown>): unknown {
  return { name: 'pkg', tasks };
}

describe('manifest', () => {
  it('parses the example manifest of the design, each task with its kind', () => {
    const manifest = parse(DESIGN_EXAMPLE);
    const kinds = Object.fromEntries(Object.entries(manifest.tasks).map(([name, spec]) => [name, taskKind(spec)]));
    assert.deepEqual(kinds, {
      count: 'parallel',
      'count-py': 'parallel',
      report: 'sequence',
      fetch: 'simple',
      chart: 'simple',
      summary: 'simple',
    });
    assert.deepEqual(requiredFiles(manifest.tasks.count!), ['count.js']);
    assert.deepEqual(requiredFileFields(manifest.tasks['count-py']!), [
      { file: 'split.py', field: 'split.command' },
      { file: 'work.py', field: 'work.command' },
      { file: 'reduce.py', field: 'reduce.command' },
    ]);
    assert.deepEqual(requiredFiles(manifest.tasks.report!), []);
  });

  it('gives the entry of each phase of a parallel task', () => {
    const manifest = parse(DESIGN_EXAMPLE);
    assert.deepEqual(parallelEntries(manifest.tasks.count as ParallelTaskSpec), {
      split: { module: 'count.js', mode: 'split' },
      work: { module: 'count.js', mode: 'work' },
      reduce: { module: 'count.js', mode: 'reduce' },
    });
    assert.deepEqual(parallelEntries(manifest.tasks['count-py'] as ParallelTaskSpec).work, {
      command: ['python3', 'work.py'],
    });
  });

  it('writes field paths with indices in brackets', () => {
    assert.equal(fieldPath(['tasks', 'report', 'steps', 2, 'all', 1]), 'tasks.report.steps[2].all[1]');
    assert.equal(fieldPath([]), '');
  });

  it('rejects an unknown kind, naming the field and the kinds', () => {
    assertRejected(withTasks({ t: { kind: 'batch', module: 'a.js' } }), 'tasks.t.kind', /simple, parallel, sequence/);
  });

  it('rejects a parallel task with both module and commands, or with only some commands', () => {
    const split = { command: ['python3', 'split.py'] };
    assertRejected(withTasks({ p: { kind: 'parallel', module: 'p.js', split } }), 'tasks.p', /either `module`/);
    assertRejected(withTasks({ p: { kind: 'parallel', split } }), 'tasks.p', /all three/);
    assertRejected(withTasks({ p: { kind: 'parallel' } }), 'tasks.p');
  });

  it('rejects parallel attempts outside 1..100 and a negative maxFailedWorkunits', () => {
    assertRejected(withTasks({ p: { kind: 'parallel', module: 'p.js', attempts: 0 } }), 'tasks.p.attempts');
    assertRejected(withTasks({ p: { kind: 'parallel', module: 'p.js', attempts: 101 } }), 'tasks.p.attempts');
    assertRejected(
      withTasks({ p: { kind: 'parallel', module: 'p.js', maxFailedWorkunits: -1 } }),
      'tasks.p.maxFailedWorkunits',
    );
  });

  it('takes `network` on a parallel task (module or commands), checked as on a simple task', () => {
    const network = { connect: ['db.internal:5432', '127.0.0.1:8080'] };
    const phases = { split: { command: ['s'] }, work: { command: ['w'] }, reduce: { command: ['r'] } };
    const manifest = parse(
      withTasks({ p: { kind: 'parallel', module: 'p.js', network }, c: { kind: 'parallel', ...phases, network } }),
    );
    assert.deepEqual((manifest.tasks.p as ParallelTaskSpec).network, network);
    assert.deepEqual((manifest.tasks.c as ParallelTaskSpec).network, network);
    const bad = { connect: ['db.internal'] };
    assertRejected(
      withTasks({ p: { kind: 'parallel', module: 'p.js', network: bad } }),
      'tasks.p.network.connect[0]',
      /to be valid \(HOST:PORT with a `:` before the port\), got `"db.internal"`/,
    );
  });

  it('rejects a phase command that is not an argv', () => {
    const phases = { split: { command: [] }, work: { command: ['w'] }, reduce: { command: ['r'] } };
    assertRejected(withTasks({ p: { kind: 'parallel', ...phases } }), 'tasks.p.split.command');
  });

  it('rejects fields of another kind: attempts on a simple task, module on a sequence', () => {
    assertRejected(withTasks({ s: { module: 'a.js', attempts: 2 } }), 'tasks.s', /`attempts`/);
    assertRejected(withTasks({ q: { kind: 'sequence', steps: ['s'], module: 'a.js' } }), 'tasks.q', /`module`/);
  });

  it('rejects a sequence without steps, or with more than 64', () => {
    const tasks = { s: { module: 'a.js' } };
    assertRejected(withTasks({ ...tasks, q: { kind: 'sequence', steps: [] } }), 'tasks.q.steps');
    const many = Array.from({ length: 65 }, () => 's');
    assertRejected(withTasks({ ...tasks, q: { kind: 'sequence', steps: many } }), 'tasks.q.steps');
  });

  it('rejects an `all` step of fewer than 2 or more than 16 tasks', () => {
    const tasks = { s: { module: 'a.js' } };
    assertRejected(withTasks({ ...tasks, q: { kind: 'sequence', steps: [{ all: ['s'] }] } }), 'tasks.q.steps[0].all');
    const many = Array.from({ length: 17 }, () => 's');
    assertRejected(
      withTasks({ ...tasks, q: { kind: 'sequence', steps: ['s', { all: many }] } }),
      'tasks.q.steps[1].all',
    );
  });

  it('rejects an unknown step name, naming the step', () => {
    const tasks = { s: { module: 'a.js' }, t: { module: 'b.js' } };
    assertRejected(
      withTasks({ ...tasks, q: { kind: 'sequence', steps: ['s', 'nope'] } }),
      'tasks.q.steps[1]',
      /`nope`/,
    );
    assertRejected(
      withTasks({ ...tasks, report: { kind: 'sequence', steps: ['s', 't', { all: ['s', 'gone'] }] } }),
      'tasks.report.steps[2].all[1]',
      /got `gone`/,
    );
  });

  it('rejects a sequence that names itself', () => {
    const tasks = { s: { module: 'a.js' } };
    assertRejected(
      withTasks({ ...tasks, q: { kind: 'sequence', steps: ['s', 'q'] } }),
      'tasks.q.steps[1]',
      /loop q → q/,
    );
  });

  it('rejects a sequence that reaches itself through other sequences', () => {
    const tasks = {
      s: { module: 'a.js' },
      a: { kind: 'sequence', steps: ['s', 'b'] },
      b: { kind: 'sequence', steps: [{ all: ['s', 'c'] }] },
      c: { kind: 'sequence', steps: ['a'] },
    };
    assertRejected(withTasks(tasks), 'tasks.c.steps[0]', /loop a → b → c → a/);
  });

  it('accepts sequences that share steps without a loop, quickly however many paths there are', () => {
    // 40 sequences, each naming every later one: 2^40 paths, one walk per task.
    const tasks: Record<string, unknown> = { leaf: { module: 'a.js' } };
    for (let i = 0; i < 40; i += 1) {
      const later = Array.from({ length: 40 - i - 1 }, (_, j) => `q${i + j + 1}`);
      tasks[`q${i}`] = { kind: 'sequence', steps: ['leaf', ...later] };
    }
    const manifest = parse(withTasks(tasks));
    assert.equal(taskKind(manifest.tasks.q0!), 'sequence');
  });

  it('takes `unrecoverableExitCodes` (1 to 125) on a command and on phase commands, never on a module', () => {
    const manifest = parse(
      withTasks({
        run: { command: ['sh', 'run.sh'], unrecoverableExitCodes: [2, 64] },
        par: {
          kind: 'parallel',
          split: { command: ['sh', 's.sh'] },
          work: { command: ['sh', 'w.sh'], unrecoverableExitCodes: [9] },
          reduce: { command: ['sh', 'r.sh'] },
        },
      }),
    );
    assert.deepEqual((manifest.tasks.run as { unrecoverableExitCodes?: number[] }).unrecoverableExitCodes, [2, 64]);
    assert.deepEqual(parallelEntries(manifest.tasks.par as ParallelTaskSpec).work, {
      command: ['sh', 'w.sh'],
      unrecoverableExitCodes: [9],
    });
    assertRejected(
      withTasks({ m: { module: 'm.js', unrecoverableExitCodes: [2] } }),
      'tasks.m',
      /`unrecoverableExitCodes` only with `command`/,
    );
    for (const codes of [[0], [126], [255], [1.5], ['2']]) {
      assertRejected(
        withTasks({ c: { command: ['sh'], unrecoverableExitCodes: codes } }),
        'tasks.c.unrecoverableExitCodes[0]',
      );
    }
    assertRejected(withTasks({ c: { command: ['sh'], unrecoverableExitCodes: [] } }), 'tasks.c.unrecoverableExitCodes');
  });

  it('keeps simple tasks as they were: no kind, or "simple"', () => {
    const manifest = parse(withTasks({ a: { module: 'a.js' }, b: { kind: 'simple', command: ['sh', 'run.sh'] } }));
    assert.equal(taskKind(manifest.tasks.a!), 'simple');
    assert.deepEqual(requiredFileFields(manifest.tasks.b!), [{ file: 'run.sh', field: 'command' }]);
    assertRejected(withTasks({ a: { kind: 'simple' } }), 'tasks.a', /exactly one of/);
  });

  it('takes `secrets` on a module, a command and a parallel task; a sequence needs those of its steps', () => {
    const manifest = parse(
      withTasks({
        mod: { module: 'm.js', secrets: ['A'] },
        cmd: { command: ['/bin/true'], secrets: ['B', 'A'] },
        par: { kind: 'parallel', module: 'p.js', secrets: ['C'] },
        plain: { module: 'm.js' },
        seq: { kind: 'sequence', steps: ['mod', { all: ['cmd', 'par'] }, 'plain'] },
        inner: { kind: 'sequence', steps: ['plain', 'par'] },
        outer: { kind: 'sequence', steps: ['inner', 'mod'] },
      }),
    );
    assert.deepEqual(declaredSecrets(manifest, 'cmd'), ['B', 'A']);
    assert.deepEqual(declaredSecrets(manifest, 'par'), ['C']);
    assert.deepEqual(declaredSecrets(manifest, 'plain'), []);
    assert.deepEqual(declaredSecrets(manifest, 'seq'), ['A', 'B', 'C']);
    assert.deepEqual(declaredSecrets(manifest, 'outer'), ['C', 'A']);
    assert.deepEqual(declaredSecrets(manifest, 'missing'), []);
    assertRejected(withTasks({ cmd: { command: ['/bin/true'], secrets: ['PATH'] } }), 'tasks.cmd.secrets[0]');
  });
});
