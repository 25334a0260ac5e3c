/**
 * The dashboard as an operator uses it, in Debian's headless Chromium driven by playwright-core
 * (never a downloaded browser): log in, the Nodes page, readable cards on the board, a
 * TaskInstance's logs, Retry of a failed one, Cancel of a running one. Every request to another
 * host than the dashboard's (fonts included) is aborted. Each step leaves a screenshot in
 * `test-results/browser/` (gitignored).
 */
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { type Browser, chromium, type Page } from 'playwright-core';

import { sandboxMode } from '../../lib/node/heartbeat-facts.js';
import { Dashboard } from '../../lib/ops/dashboard.js';
import { CHROMIUM_PATHS, findChromium } from '../chromium.js';
import {
  copyFixture,
  defer,
  makePackage,
  REPO_ROOT,
  redisUrl,
  rejection,
  startCluster,
  testClient,
  waitFor,
} from '../helpers.js';

/** Where the screenshots go (the README names it). */
const SHOTS = join(REPO_ROOT, 'test-results/browser');

const USER = { username: 'ops', password: 's3cret-admin' };

async function startDashboard(): Promise<string> {
  const dashboard = new Dashboard({
    redis: redisUrl(),
    port: 0,
    refreshMs: 100,
    auth: [{ user: USER.username, password: USER.password }],
  });
  defer(() => dashboard.close());
  return dashboard.start();
}

/** Debian's headless chromium, closed after the test (its processes with it: the leak check looks). */
async function launch(executablePath: string): Promise<Browser> {
  const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
  defer(() => browser.close());
  return browser;
}

/**
 * A page of a new browser context: logged in to the dashboard at `url` when `credentials` are given,
 * with every request to another host aborted (and listed in `blocked`).
 */
async function openPage(
  browser: Browser,
  url: string,
  credentials?: typeof USER,
): Promise<{ page: Page; blocked: string[] }> {
  const context = await browser.newContext({
    viewport: { width: 1400, height: 900 },
    ...(credentials === undefined ? {} : { httpCredentials: credentials }),
  });
  const host = new URL(url).host;
  const blocked: string[] = [];
  await context.route('**/*', async (route) => {
    const requested = new URL(route.request().url());
    if (requested.host === host) {
      await route.continue();
    } else {
      blocked.push(requested.href);
      await route.abort('blockedbyclient');
    }
  });
  return { page: await context.newPage(), blocked };
}

/** A sequence of two steps, and a parallel task whose odd units fail. */
const PARTS_PACKAGE = {
  'package.json': JSON.stringify({ type: 'module', private: true }),
  'tydra.json': JSON.stringify({
    name: 'parts',
    tasks: {
      calc: { kind: 'sequence', steps: ['double', 'inc'] },
      odd: { kind: 'parallel', module: 'odd.mjs' },
      double: { module: 'double.mjs' },
      inc: { module: 'inc.mjs' },
    },
  }),
  'double.mjs': 'export default (n) => n * 2;\n',
  'inc.mjs': 'export default (n) => n + 1;\n',
  'odd.mjs': `
    export function split(input) { return Array.from({ length: input.n }, (_, i) => i); }
    export function work(i) { if (i % 2 === 1) throw new Error('odd unit ' + i); return i; }
    export async function reduce(results) { let ok = 0; for await (const r of results) if (r !== null) ok += 1; return ok; }
  `,
};

/** Takes numbered full-page screenshots into {@link SHOTS}, emptied first (only the last run's are kept). */
async function screenshots(): Promise<(page: Page, name: string) => Promise<void>> {
  await rm(SHOTS, { recursive: true, force: true });
  await mkdir(SHOTS, { recursive: true });
  let step = 0;
  return async (page, name) => {
    step += 1;
    await page.screenshot({ path: join(SHOTS, `${String(step).padStart(2, '0')}-${name}.png`), fullPage: true });
  };
}

describe('the browser test without chromium', () => {
  it('fails with a pointer to scripts/setup.sh instead of skipping', () => {
    assert.throws(
      () => findChromium(['/nonexistent/chromium']),
      /chromium is not installed \(looked for \/nonexistent\/chromium\)[^]*run scripts\/setup\.sh/,
    );
    assert.ok(CHROMIUM_PATHS.length > 0);
  });
});

describe('the dashboard in a browser (@integration)', function () {
  this.timeout(90_000);

  it('logs in, shows two live nodes, drains one, readable cards and logs; retries a failed TaskInstance, cancels a running one', async () => {
    const executablePath = findChromium();
    const shot = await screenshots();
    const { nodes } = await startCluster(2);
    const tydra = testClient();
    const { sha1 } = await tydra.deploy(await copyFixture('probe'));
    const done = await tydra.submit('probe/echo', { word: 'hello' });
    await done.result();
    const failed = await tydra.submit('probe/throw', { word: 'boom' });
    await rejection(failed.result());
    const url = await startDashboard();
    const browser = await launch(executablePath);

    // Without credentials the dashboard asks for them (401), and a headless browser, which cannot
    // prompt, gives up; with them, the pages.
    const anonymous = await openPage(browser, url);
    await assert.rejects(anonymous.page.goto(`${url}tydra/nodes`), /ERR_INVALID_AUTH_CREDENTIALS/);
    const { page, blocked } = await openPage(browser, url, USER);

    // The Nodes page: both nodes alive.
    await page.goto(`${url}tydra/nodes`);
    for (const node of nodes) {
      const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: node.id, exact: true }) });
      await row.getByRole('cell', { name: 'alive', exact: true }).waitFor();
      // The sandbox mode it detected, as its heartbeat published it.
      assert.equal(await row.locator('td.sandbox').innerText(), sandboxMode(false, node.cgroups));
    }
    await shot(page, 'nodes');

    // A node queue on the board offers no queue actions (no Pause that would not drain); `tasks` does.
    const nodeId = nodes[1]?.id ?? '';
    const actions = page.locator('button:has(svg.lucide-ellipsis-vertical)');
    await page.goto(`${url}queue/node.${nodeId}`);
    await page.getByText(`Runs of node ${nodeId}`).waitFor();
    assert.equal(await actions.count(), 0, 'no actions menu on a node queue');
    await page.goto(`${url}queue/tasks`);
    await page.getByText('TaskInstances, one job each').waitFor();
    await actions.click();
    await page.getByRole('menuitem', { name: 'Pause', exact: true }).waitFor();
    await page.keyboard.press('Escape');
    // Drain from the Nodes page: the board then shows its queue paused; Resume undoes both.
    await page.goto(`${url}tydra/nodes`);
    const nodeRow = page.getByRole('row').filter({ has: page.getByRole('cell', { name: nodeId, exact: true }) });
    await nodeRow.getByRole('button', { name: 'Drain', exact: true }).click();
    await nodeRow.getByRole('cell', { name: 'draining', exact: true }).waitFor();
    await page.goto(`${url}queue/node.${nodeId}`);
    // Its header's badge `[ Paused ]` (the status tabs' "Paused" is always there).
    await page.getByText('[ Paused ]', { exact: true }).first().waitFor();
    await shot(page, 'drained-node-queue');
    await page.goto(`${url}tydra/nodes`);
    await nodeRow.getByRole('button', { name: 'Resume', exact: true }).click();
    await nodeRow.getByRole('cell', { name: 'alive', exact: true }).waitFor();
    await page.goto(`${url}queue/node.${nodeId}`);
    await page.getByText(`Runs of node ${nodeId}`).waitFor();
    assert.equal(await page.getByText('[ Paused ]', { exact: true }).count(), 0, 'resumed on the board too');

    // The board: readable card titles, the Logs tab open by default.
    const title = (task: string) => new RegExp(`^probe@${sha1.slice(0, 7)}/${task} · test-node-`);
    await page.goto(`${url}queue/tasks?status=completed`);
    await page.getByText(title('echo')).waitFor();
    await page.getByText('echo log line').waitFor();
    await shot(page, 'completed-with-logs');
    await page.goto(`${url}queue/tasks?status=failed`);
    await page.getByText(title('throw')).waitFor();
    await page.getByText(/^dispatched to node test-node-/).waitFor();
    await shot(page, 'failed');

    // Retry the failed one from its card: it runs afresh (and fails again, as `throw` does).
    await page
      .getByRole('button')
      .filter({ has: page.locator('svg.lucide-refresh-cw') })
      .filter({ hasNotText: 'Retry all' })
      .click();
    const confirm = page.getByRole('button', { name: 'Confirm', exact: true });
    await confirm.waitFor();
    await shot(page, 'retry-confirm');
    await confirm.click();
    await confirm.waitFor({ state: 'detached' });
    await waitFor('the retried TaskInstance to fail again', async () => {
      const status = await failed.status();
      return status.state === 'failed' && status.logs.some((line) => line.startsWith('retried: run 2 starts afresh'))
        ? true
        : undefined;
    });
    await page.goto(`${url}tydra/instances/${failed.id}`);
    const logs = page.locator('#logs');
    await logs.getByText(/retried: run 2 starts afresh/).waitFor();
    assert.equal((await logs.innerText()).match(/^dispatched to node /gm)?.length, 2, 'two runs');
    assert.equal(await page.locator('#state').innerText(), 'failed');
    await shot(page, 'retried-instance');

    // Cancel a running one from its tydra page.
    const sleeping = await tydra.submit('probe/sleep', null, { timeoutMs: 60_000 });
    defer(async () => {
      await tydra.cancel(sleeping.id).catch(() => undefined);
      await sleeping.result().catch(() => undefined);
    });
    await waitFor('the sleep to run', async () => ((await sleeping.status()).state === 'running' ? true : undefined));
    // The board's Delete of it says to cancel it instead.
    await page.goto(`${url}queue/tasks?status=waiting-children`);
    await page.getByText(title('sleep')).waitFor();
    await page.locator('button:has(svg.lucide-trash-2)').click();
    await page.getByRole('button', { name: 'Confirm', exact: true }).click();
    await page.getByText(`TaskInstance ${sleeping.id} has not ended`).waitFor();
    await shot(page, 'delete-refused');
    await page.goto(`${url}tydra/instances/${sleeping.id}`);
    assert.equal(await page.locator('#state').innerText(), 'running');
    await shot(page, 'running');
    await page.getByRole('button', { name: 'Cancel', exact: true }).click();
    await page.waitForURL(/\?cancel=/);
    await rejection(sleeping.result());
    await page.reload();
    assert.equal(await page.locator('#state').innerText(), 'cancelled');
    assert.equal(await page.locator('#error').innerText(), 'cancelled by request');
    assert.equal(await page.getByRole('button', { name: 'Cancel', exact: true }).count(), 0);
    await shot(page, 'cancelled');

    // A sequence's page links its steps; a parallel one's shows its workunits and failures.
    await tydra.deploy(await makePackage(PARTS_PACKAGE));
    const calc = await tydra.submit('parts/calc', 3);
    assert.equal(await calc.result(), 7);
    const odd = await tydra.submit('parts/odd', { n: 6 }, { maxFailedWorkunits: 6 });
    assert.equal(await odd.result(), 3);
    await page.goto(`${url}tydra/instances/${calc.id}`);
    await page
      .locator('#steps')
      .getByRole('link', { name: `${calc.id}.s1`, exact: true })
      .click();
    await page.waitForURL(new RegExp(`/tydra/instances/${calc.id}\\.s1$`));
    assert.equal(await page.locator('#result').innerText(), '7');
    await page.goto(`${url}tydra/instances/${odd.id}`);
    await page.locator('#failed-workunits').getByText('odd unit 5').waitFor();
    assert.match(await page.locator('#workunits').innerText(), /total\s+6\s+done\s+3\s+failed\s+3/);
    await shot(page, 'workunits');

    // The Packages page: undeploy a version with its button, then prune, dry run first.
    await page.goto(`${url}tydra/packages`);
    const partsTable = page.locator('#package-parts + table');
    await partsTable.getByRole('button', { name: 'Undeploy', exact: true }).click();
    await page.waitForURL(/\/tydra\/packages$/);
    await page.locator('#package-parts + table').getByRole('cell', { name: 'undeployed', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Prune… (dry run first)' }).click();
    await page.getByText('Dry run: nothing was changed.').waitFor();
    await shot(page, 'prune-dry-run');
    await page.getByRole('button', { name: 'Prune now', exact: true }).click();
    await page.waitForURL(/\/tydra\/packages\/prune$/);
    await page.getByRole('heading', { name: 'Removed (1)', exact: true }).waitFor();
    await page.getByText('Pruned.', { exact: false }).waitFor();
    await shot(page, 'pruned');

    // Bull Board's page asks for Google's fonts: they must have been asked for, and refused.
    assert.ok(blocked.length > 0, 'the board asked for outside fonts, and they were blocked');
  });
});
