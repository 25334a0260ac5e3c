import assert from 'node:assert/strict';

import { sandboxMode } from '../../../lib/node/heartbeat-facts.js';

describe('what a node publishes with its heartbeat', () => {
  it('names its sandbox mode by how it confines sandboxes', () => {
    const v2 = {
      mode: 'v2',
      parent: '/sys/fs/cgroup/tydra',
      controllers: ['memory', 'pids'],
      cgroupKill: true,
    } as const;
    const v1 = { mode: 'v1', memory: '/m', pids: '/p', cpuacct: undefined } as const;
    assert.equal(sandboxMode(false, v2), 'cgroup-v2');
    assert.equal(sandboxMode(false, v1), 'cgroup-v1');
    assert.equal(sandboxMode(false, { mode: 'none', reason: 'read-only mount' }), 'rlimits');
    // Unsandboxed wins whatever the host offers: no task is confined.
    assert.equal(sandboxMode(true, v2), 'unsandboxed');
    assert.equal(sandboxMode(true, undefined), 'unsandboxed');
  });
});
