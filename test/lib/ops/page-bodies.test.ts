import assert from 'node:assert/strict';

import { progressInWords } from '../../../lib/ops/instance-page.js';
import { FAILURES_PER_PAGE } from '../../../lib/ops/instance-parts.js';
import { partsBody } from '../../../lib/ops/instance-parts-page.js';
import { nodesBody, nodeState } from '../../../lib/ops/nodes-page.js';
import { nodeInfo } from '../../node-info.js';

const node = nodeInfo;

describe('what the tydra pages say', () => {
  it('reads a node as alive, paused, draining, late, dead or stopped', () => {
    assert.equal(nodeState(node({})), 'alive');
    assert.equal(nodeState(node({ alive: false })), 'late');
    assert.equal(nodeState(node({ alive: false, lost: true })), 'dead');
    assert.equal(nodeState(node({ state: 'stopped', alive: false, lost: true })), 'stopped');
    assert.equal(nodeState(node({}), true), 'paused', 'its queue paused, but not drained');
    assert.equal(nodeState(node({ draining: true }), true), 'draining');
    assert.equal(nodeState(node({ alive: false, lost: true }), true), 'dead');
  });

  it('puts progress in words, as tydra status does', () => {
    assert.equal(progressInWords({ percent: 42.7, value: 42.7 }), '42%');
    assert.equal(
      progressInWords({ percent: 42, workunits: { total: 1000, done: 420, failed: 3, running: 8 }, splitDone: false }),
      '42% · workunits 420/1000 done, 3 failed, 8 running (split still running)',
    );
    assert.equal(
      progressInWords({ percent: 33, step: { index: 1, name: 'count' }, steps: 3 }),
      '33% · step 2/3 (count)',
    );
  });

  it('shows the sandbox mode and cache a node published, and ? for a node that published none', () => {
    const published = nodesBody([
      { node: node({ id: 'a', sandbox: 'cgroup-v1', cachedVersions: 3, cachedBytes: 1536 }), running: 0 },
      { node: node({ id: 'b' }), running: 0 },
    ]).text;
    assert.match(published, /<td class="sandbox">cgroup-v1<\/td>\s*<td class="cache">3 versions, 1\.5 KiB<\/td>/);
    assert.match(published, /<td class="sandbox">\?<\/td>\s*<td class="cache">\?<\/td>/);
  });

  it("shows a node's warm pool: size, most, hits and misses; off; unknown for a node that published none", () => {
    const pool = (size: number, max: number, hits: number, misses: number) => ({ size, max, hits, misses });
    const page = nodesBody([
      { node: node({ id: 'a', pool: pool(1, 2, 3, 1) }), running: 0 },
      { node: node({ id: 'b', pool: pool(0, 0, 0, 5) }), running: 0 },
      { node: node({ id: 'c' }), running: 0 },
    ]).text;
    assert.match(page, /<td class="pool">1\/2, 3 hits, 1 misses \(75% hits\)<\/td>/);
    assert.match(page, /<td class="pool">off<\/td>/);
    assert.match(page, /<td class="pool">unknown<\/td>/);
  });

  it('shows no warm pool (-) for a node that is not alive: its last heartbeat says nothing of now', () => {
    const pool = { size: 1, max: 1, hits: 0, misses: 0 };
    const page = nodesBody([
      { node: node({ id: 'stopped', state: 'stopped', alive: false, lost: true, pool }), running: 0 },
      { node: node({ id: 'dead', alive: false, lost: true, pool }), running: 0 },
      { node: node({ id: 'late', alive: false, pool }), running: 0 },
    ]).text;
    assert.equal(page.match(/<td class="pool">-<\/td>/g)?.length, 3, page);
    assert.ok(!page.includes('1/1'), page);
  });

  it("pages a parallel TaskInstance's failed workunits and links a sequence's reached steps", () => {
    const failures = Array.from({ length: FAILURES_PER_PAGE }, (_, i) => ({ index: 100 + i, message: `boom <${i}>` }));
    const parallel = partsBody('p1', {
      kind: 'parallel',
      counts: { total: 500, done: 450, failed: 45, running: 5, splitDone: true },
      failures: { total: 45, from: FAILURES_PER_PAGE, items: failures },
    }).text;
    assert.match(parallel, /<th>failed<\/th>\s*<td>45<\/td>/);
    assert.ok(parallel.includes(`Failed workunits (${FAILURES_PER_PAGE + 1}–${2 * FAILURES_PER_PAGE} of 45)`));
    assert.ok(parallel.includes('boom &lt;0&gt;'), 'messages escaped');
    assert.ok(parallel.includes('href="/tydra/instances/p1?failures=0#failures" rel="prev"'));
    assert.ok(parallel.includes(`href="/tydra/instances/p1?failures=${2 * FAILURES_PER_PAGE}#failures" rel="next"`));

    const sequence = partsBody('s1', {
      kind: 'sequence',
      current: 1,
      steps: [
        { index: 0, label: 'double', children: [{ id: 's1.s0', task: 'double', state: 'completed' }] },
        {
          index: 1,
          label: 'all(inc, square)',
          children: [
            { id: 's1.s1.0', task: 'inc', state: 'running' },
            { id: 's1.s1.1', task: 'square', state: 'gone' },
          ],
        },
        { index: 2, label: 'join', children: [{ id: 's1.s2', task: 'join', state: 'not started' }] },
      ],
    }).text;
    assert.ok(sequence.includes('<a href="/tydra/instances/s1.s0">s1.s0</a>'));
    assert.ok(sequence.includes('<a href="/tydra/instances/s1.s1.0">s1.s1.0</a>'));
    assert.match(sequence, /<td rowspan="2">2 \(current\)<\/td>\s*<td rowspan="2">all\(inc, square\)<\/td>/);
    assert.ok(!sequence.includes('href="/tydra/instances/s1.s2"'), 'no link to a step not started');
    assert.match(sequence, /<td>s1\.s2<\/td>\s*<td>join<\/td>\s*<td class="state-not-started">not started<\/td>/);
    assert.equal(partsBody('x', undefined).text, '');
  });
});
