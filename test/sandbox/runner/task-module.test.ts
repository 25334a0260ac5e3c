/**
 * How the runner loads a task's module: CommonJS with `require()`, without starting Node's ES
 * module loader, everything else with `import()` (`sandbox/runner/task-module.ts`).
 */
import assert from 'node:assert/strict';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

import { TaskFailedError } from '../../../lib/core/errors.js';
import { DEFAULT_TASK_LIMITS } from '../../../lib/core/limits.js';
import { runTask, type RunTaskOptions } from '../../../sandbox/launcher/run-task.js';
import { isCommonJs, loadTaskModule } from '../../../sandbox/runner/task-module.js';
import { sandboxBase } from '../launcher/sandbox-base.js';
import { tempDir } from '../../helpers.js';

/** Writes `files` (path → text) under `root`, world-readable, making folders as needed. */
async function writeTree(root: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(root, path, '..'), { recursive: true, mode: 0o755 });
    await writeFile(join(root, path), text, { mode: 0o644 });
  }
}

describe('isCommonJs', () => {
  let root: string;

  // Each test's temp folders are removed after it (test/setup.ts).
  beforeEach(async () => {
    root = await tempDir();
    await writeTree(root, {
      'a.cjs': '',
      'a.mjs': '',
      'a.js': '',
      'a.json': '',
      'cjs/package.json': '{ "type": "commonjs" }',
      'cjs/a.js': '',
      'cjs/deep/er/a.js': '',
      'cjs/esm/package.json': '{ "type": "module" }',
      'cjs/esm/a.js': '',
      'cjs/untyped/package.json': '{ "name": "untyped" }',
      'cjs/untyped/a.js': '',
      'cjs/broken/package.json': '{ "type": "commonjs"',
      'cjs/broken/a.js': '',
      'cjs/array/package.json': '["commonjs"]',
      'cjs/array/a.js': '',
    });
  });

  it('goes by the extension first: .cjs is CommonJS, .mjs and anything not .js are not', () => {
    assert.equal(isCommonJs(join(root, 'a.cjs'), root), true);
    assert.equal(isCommonJs(join(root, 'a.mjs'), root), false);
    assert.equal(isCommonJs(join(root, 'a.json'), root), false);
    assert.equal(isCommonJs(join(root, 'cjs/esm/a.mjs'), root), false);
  });

  it('reads a .js file as CommonJS only under a nearest package.json that says "type": "commonjs"', () => {
    assert.equal(isCommonJs(join(root, 'cjs/a.js'), root), true);
    assert.equal(isCommonJs(join(root, 'cjs/deep/er/a.js'), root), true, 'the nearest package.json may be folders up');
    assert.equal(isCommonJs(join(root, 'cjs/esm/a.js'), root), false, 'a nearer "type": "module" wins');
    assert.equal(isCommonJs(join(root, 'cjs/untyped/a.js'), root), false, 'no type: left to import()');
    assert.equal(isCommonJs(join(root, 'a.js'), root), false, 'no package.json up to the root');
  });

  it('leaves a package.json it cannot read as an object to Node, which reports it', () => {
    assert.equal(isCommonJs(join(root, 'cjs/broken/a.js'), root), false);
    assert.equal(isCommonJs(join(root, 'cjs/array/a.js'), root), false);
  });

  it('stops at the package root: a package.json above it does not count', () => {
    assert.equal(isCommonJs(join(root, 'cjs/deep/er/a.js'), join(root, 'cjs/deep')), false);
  });
});

/** Returns its input and the ES module machinery Node loaded by the time the task ran. */
const PROBE_BODY = `async (input) => ({
  input,
  linked: process.moduleLoadList.includes('NativeModule internal/modules/esm/module_job'),
  resolved: process.moduleLoadList.includes('NativeModule internal/modules/esm/resolve'),
})`;

/** Counts its evaluations, then waits at the top level: only import() can load it. */
const TOP_LEVEL_AWAIT = `globalThis.evaluations = (globalThis.evaluations ?? 0) + 1;
const value = await Promise.resolve(6);
export default () => ({ value, evaluations: globalThis.evaluations });
`;

describe('loadTaskModule', () => {
  let root: string;

  beforeEach(async () => {
    root = await tempDir();
    await writeTree(root, {
      'esm.mjs': 'export default () => 1;\nexport const named = 2;\n',
      'tla.mjs': TOP_LEVEL_AWAIT.replaceAll('globalThis.evaluations', 'globalThis.tlaEvaluations'),
      'thrower.mjs': "throw new Error('thrown at the top level');\n",
    });
  });

  it('gives an ES module namespace, required or imported alike', async () => {
    for (const requireEsm of [true, false]) {
      const loaded = await loadTaskModule(join(root, 'esm.mjs'), root, requireEsm);
      assert.equal(typeof loaded.default, 'function', `requireEsm ${String(requireEsm)}`);
      assert.equal(loaded.named, 2);
    }
  });

  it('imports a graph with top-level await that require() refuses, evaluating it once', async () => {
    const loaded = await loadTaskModule(join(root, 'tla.mjs'), root, true);
    assert.deepEqual((loaded.default as () => unknown)(), { value: 6, evaluations: 1 });
  });

  it('passes on the error a module throws at its top level', async () => {
    await assert.rejects(loadTaskModule(join(root, 'thrower.mjs'), root, true), /thrown at the top level/);
  });
});

describe('the runner loading task modules (@integration)', function () {
  this.timeout(60_000);
  let root: string;
  let base: Omit<RunTaskOptions, 'task' | 'limits' | 'instanceId'>;

  // Each test's temp folders are removed after it (test/setup.ts).
  beforeEach(async () => {
    root = await tempDir();
    await chmod(root, 0o755);
    await writeTree(root, {
      'probe.cjs': `module.exports = ${PROBE_BODY};\n`,
      'probe.mjs': `export default ${PROBE_BODY};\n`,
      'typed/package.json': '{ "type": "commonjs" }',
      'typed/probe.js': `module.exports = ${PROBE_BODY};\n`,
      'esm/package.json': '{ "type": "module" }',
      'esm/probe.js': `export default ${PROBE_BODY};\n`,
      'tla.mjs': TOP_LEVEL_AWAIT,
      'object.cjs': 'module.exports = { run: () => 1 };\n',
      'transpiled.cjs': 'Object.defineProperty(exports, "__esModule", { value: true }); exports.default = () => 1;\n',
      'helper.cjs': 'module.exports = (x) => x * 3;\n',
      'uses-require.cjs': "const triple = require('./helper.cjs'); module.exports = (input) => triple(input);\n",
    });
    base = await sandboxBase(root);
  });

  function run(module: string, input: unknown = null): Promise<unknown> {
    return runTask({
      ...base,
      input,
      task: { module },
      instanceId: `task-module-${process.pid}-${Math.random().toString(16).slice(2)}`,
      limits: DEFAULT_TASK_LIMITS,
    });
  }

  it('runs a CommonJS task without linking a single ES module', async () => {
    assert.deepEqual(await run('probe.cjs', 7), { input: 7, linked: false, resolved: false });
    assert.deepEqual(await run('typed/probe.js', 8), { input: 8, linked: false, resolved: false });
  });

  it("loads an ES module task, required without the loader's resolver where Node can (this one's)", async () => {
    // The sandbox runs the same Node binary as this test.
    const resolved = !process.features.require_module;
    assert.deepEqual(await run('probe.mjs', 9), { input: 9, linked: true, resolved });
    assert.deepEqual(await run('esm/probe.js', 10), { input: 10, linked: true, resolved });
    assert.deepEqual(await run('tla.mjs'), { value: 6, evaluations: 1 }, 'top-level await: imported instead');
  });

  it('gives a CommonJS task what import() would: module.exports is the default export, require() works', async () => {
    assert.equal(await run('uses-require.cjs', 5), 15);
    for (const [module, got] of [
      ['object.cjs', 'object'],
      ['transpiled.cjs', 'object'],
    ]) {
      const error = await run(module ?? '').then(
        () => assert.fail(`${module} should fail`),
        (reason: unknown) => reason,
      );
      assert.ok(error instanceof TaskFailedError, String(error));
      assert.match(
        error.message,
        new RegExp(`Expected the default export of ${module} to be a function .*, got ${got}`),
      );
    }
  });
});
