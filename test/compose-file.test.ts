import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { REPO_ROOT } from './helpers.js';

/**
 * docker-compose.yml and the Dockerfile as scripts/compose-smoke.sh ran them for real (README
 * "Containers, tested with podman"). That script needs root and podman and takes minutes, so it
 * is not in the suite; these checks keep the file within what it proved, and within what
 * podman-compose 1.0.3 (Debian 12's) reads correctly.
 */
/** docker-compose.yml without its comment lines (which quote what the file must not do). */
async function compose(): Promise<string> {
  const text = await readFile(join(REPO_ROOT, 'docker-compose.yml'), 'utf8');
  return text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n');
}

/** The lines of one top-level service, up to the next key at its indentation. */
function service(text: string, name: string): string {
  const start = text.indexOf(`\n  ${name}:\n`);
  assert.notEqual(start, -1, `Expected a service ${name} in docker-compose.yml`);
  const rest = text.slice(start + 1);
  const end = rest.slice(1).search(/\n {2}[a-z]|\n[a-z]/);
  return end === -1 ? rest : rest.slice(0, end + 1);
}

describe('docker-compose.yml and the Dockerfile, as the podman run proved them', () => {
  it('every service has a health check', async () => {
    const text = await compose();
    for (const name of ['redis', 'master', 'node', 'dashboard']) {
      assert.match(service(text, name), /\n {4}healthcheck:\n/, `Expected a healthcheck on ${name}`);
    }
  });

  it('the node service gets no capability and no privileged mode, only the three security options', async () => {
    const node = service(await compose(), 'node');
    assert.doesNotMatch(node, /cap_add|privileged: true/);
    const options = [...node.matchAll(/^ {6}- (\S+)$/gm)].map((m) => m[1]).filter((o) => o?.includes('='));
    assert.deepEqual(options, ['seccomp=unconfined', 'apparmor=unconfined', 'systempaths=unconfined']);
    assert.match(node, /no-new-privileges:true/);
  });

  it('the node health check is a string, since podman-compose 1.0.3 empties a list form for later replicas', async () => {
    assert.match(service(await compose(), 'node'), /\n {6}test: '[^\n]+'\n/);
  });

  it('no variable has an empty default (${X:-}), which podman-compose 1.0.3 leaves unreplaced', async () => {
    assert.doesNotMatch(await compose(), /\$\{[A-Z_]+:?-\}/);
  });

  it('the Dockerfile takes its base image as a build argument, Docker Hub node:20 by default', async () => {
    const text = await readFile(join(REPO_ROOT, 'Dockerfile'), 'utf8');
    assert.match(text, /^ARG BASE_IMAGE=node:20-bookworm-slim$/m);
    assert.deepEqual(
      [...text.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]),
      ['${BASE_IMAGE}', '${BASE_IMAGE}'],
    );
  });
});
