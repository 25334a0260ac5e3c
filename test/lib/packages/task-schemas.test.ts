import assert from 'node:assert/strict';

import {
  InputSchemaError,
  ManifestError,
  OutputSchemaError,
  TaskUnrecoverableError,
} from '../../../lib/core/errors.js';
import { parseManifest } from '../../../lib/packages/manifest.js';
import {
  checkTaskInput,
  checkTaskOutput,
  compileTaskSchema,
  schemaMismatch,
  TASK_SCHEMA_LIMITS,
} from '../../../lib/packages/task-schemas.js';

const NAME_SCHEMA = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] };

function parseTasks(tasks: Record<string, unknown>) {
  return parseManifest(JSON.stringify({ name: 'pkg', tasks }));
}

/** Asserts the manifest is refused with a ManifestError whose field is `field`, named in its message. */
function assertRefused(tasks: Record<string, unknown>, field: string, message: RegExp): void {
  assert.throws(
    () => parseTasks(tasks),
    (error: unknown) => {
      assert.ok(error instanceof ManifestError, `expected a ManifestError, got ${String(error)}`);
      assert.equal(error.field, field);
      assert.ok(error.message.includes(`\`${field}\``), `message should name ${field}: ${error.message}`);
      assert.match(error.message, message);
      return true;
    },
  );
}

describe('task schemas', () => {
  it('accepts `input` and `output` on simple and parallel tasks, and `input` on a sequence', () => {
    const manifest = parseTasks({
      greet: { module: 'greet.js', input: NAME_SCHEMA, output: { type: 'string' } },
      count: { kind: 'parallel', module: 'count.js', input: true, output: { type: 'integer' } },
      both: { kind: 'sequence', steps: ['greet'], input: NAME_SCHEMA },
    });
    assert.deepEqual(manifest.tasks.greet?.input, NAME_SCHEMA);
    assert.deepEqual(manifest.tasks.count?.output, { type: 'integer' });
    assert.deepEqual(manifest.tasks.both?.input, NAME_SCHEMA);
  });

  it('refuses a schema that does not compile, naming its field and the reason', () => {
    assertRefused({ greet: { module: 'g.js', input: { type: 'strin' } } }, 'tasks.greet.input', /valid JSON Schema/);
    assertRefused({ greet: { module: 'g.js', output: { typ: 'string' } } }, 'tasks.greet.output', /unknown keyword/);
    assertRefused(
      { c: { kind: 'parallel', module: 'c.js', output: { type: 'string', format: 'no-such-format' } } },
      'tasks.c.output',
      /unknown format/,
    );
    assertRefused(
      {
        greet: { module: 'g.js', input: { type: 'object', properties: { when: { type: 'string', format: 'date' } } } },
      },
      'tasks.greet.input',
      /: unknown format "date" at path "#\/properties\/when": tydra checks no formats, so a schema with "format" is refused \(use "pattern"\)$/,
    );
  });

  it('refuses a schema that is not an object or a boolean', () => {
    assertRefused({ greet: { module: 'g.js', input: 'string' } }, 'tasks.greet.input', /`"string"`/);
  });

  it('refuses a `$ref` outside the schema, and takes one inside it', () => {
    assertRefused(
      { greet: { module: 'g.js', input: { $ref: 'https://example.com/s.json' } } },
      'tasks.greet.input',
      /must point inside the schema.*https:\/\/example\.com\/s\.json/,
    );
    assertRefused(
      { greet: { module: 'g.js', input: { properties: { a: { $ref: 'other.json#/a' } } } } },
      'tasks.greet.input',
      /other\.json/,
    );
    const local = { $defs: { n: { type: 'integer' } }, properties: { n: { $ref: '#/$defs/n' } } };
    assert.deepEqual(parseTasks({ greet: { module: 'g.js', input: local } }).tasks.greet?.input, local);
  });

  it('refuses a schema larger than the limit', () => {
    const big = { description: 'x'.repeat(TASK_SCHEMA_LIMITS.maxBytes), type: 'string' };
    assertRefused({ greet: { module: 'g.js', input: big } }, 'tasks.greet.input', /more than the 65536 allowed/);
  });

  it('refuses `output` on a sequence, saying where to put it', () => {
    assertRefused(
      { greet: { module: 'g.js' }, both: { kind: 'sequence', steps: ['greet'], output: { type: 'string' } } },
      'tasks.both.output',
      /last step/,
    );
  });

  it('compiles a schema once, whatever object holds it', () => {
    assert.equal(compileTaskSchema({ ...NAME_SCHEMA }), compileTaskSchema(structuredClone(NAME_SCHEMA)));
  });

  it('gives the JSON path and the reason of the first mismatch', () => {
    assert.equal(schemaMismatch(NAME_SCHEMA, { name: 'Ada' }), undefined);
    assert.deepEqual(schemaMismatch(NAME_SCHEMA, { name: 3 }), { path: '/name', reason: 'must be string' });
    assert.deepEqual(schemaMismatch(NAME_SCHEMA, {}), {
      path: '(root)',
      reason: "must have required property 'name'",
    });
    const closed = { type: 'object', properties: { a: { type: 'array', items: { type: 'integer' } } } };
    assert.deepEqual(schemaMismatch(closed, { a: [1, 'x'] }), { path: '/a/1', reason: 'must be integer' });
    const strict = { type: 'object', additionalProperties: false };
    assert.deepEqual(schemaMismatch(strict, { extra: 1 }), {
      path: '(root)',
      reason: 'must NOT have additional properties (`extra`)',
    });
  });

  it('throws InputSchemaError and OutputSchemaError (unrecoverable) with the field, path and reason', () => {
    checkTaskInput('greet', {}, 'anything');
    checkTaskInput('greet', { input: NAME_SCHEMA }, { name: 'Ada' });
    assert.throws(
      () => checkTaskInput('greet', { input: NAME_SCHEMA }, { name: 3 }),
      (error: unknown) =>
        error instanceof InputSchemaError &&
        error.message === 'Expected the input to match tasks.greet.input: /name must be string' &&
        error.field === 'tasks.greet.input' &&
        error.path === '/name',
    );
    checkTaskOutput('greet', { output: { type: 'string' } }, 'hi', 'id-1');
    assert.throws(
      () => checkTaskOutput('greet', { output: { type: 'string' } }, 42, 'id-1'),
      (error: unknown) =>
        error instanceof OutputSchemaError &&
        error instanceof TaskUnrecoverableError &&
        error.instanceId === 'id-1' &&
        error.message === 'Expected the output to match tasks.greet.output: (root) must be string',
    );
  });
});
