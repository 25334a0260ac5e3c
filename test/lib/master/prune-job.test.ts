import assert from 'node:assert/strict';

import { changes } from '../../../lib/master/prune-job.js';
import type { PruneReport } from '../../../lib/packages/pruner.js';

const sha = (digit: string): string => digit.repeat(40);

function report(dryRun: boolean): PruneReport {
  return {
    dryRun,
    removed: [{ name: 'a', sha1: sha('1'), verdict: 'removed', reason: 'no holders since then' }],
    kept: [
      { name: 'a', sha1: sha('2'), verdict: 'latest', reason: 'latest version' },
      // A kept version whose reason reads like a removal must still not be listed.
      { name: 'kept', sha1: sha('3'), verdict: 'held', reason: 'removed soon' },
    ],
    healed: [{ instanceId: 'i-1', name: 'a', sha1: sha('1'), why: 'missing' }],
    packages: 2,
    versions: 3,
    ms: 4,
  };
}

describe('prune job log lines', () => {
  it('lists what a pass changed (healed references, removed versions) and never what it kept', () => {
    assert.deepEqual(changes(report(false)), [
      `healed a reference of i-1 on a@${sha('1')} (its job is missing)`,
      `removed a@${sha('1')}: no holders since then`,
    ]);
  });

  it('says "would" for a dry run', () => {
    assert.deepEqual(changes(report(true)), [
      `would heal a reference of i-1 on a@${sha('1')} (its job is missing)`,
      `would remove a@${sha('1')}: no holders since then`,
    ]);
  });
});
