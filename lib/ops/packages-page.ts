/**
 * The Packages page (`/tydra/packages`): every package's versions with deploy time, size,
 * reference count, latest, undeployed and lease; for an admin, undeploy buttons and a prune that
 * shows its dry run first (see `tydra-pages.ts` for the POST handlers).
 */
import type { PackageVersionUse } from '../client/client.js';
import type { PruneReport } from '../packages/pruner.js';
import { html, type SafeHtml } from './page-html.js';

export interface PackageListing {
  name: string;
  latest: string | null;
  versions: PackageVersionUse[];
}

const bytes = (size: number): string =>
  size < 1024
    ? `${size} B`
    : size < 1024 * 1024
      ? `${(size / 1024).toFixed(1)} KiB`
      : `${(size / 1048576).toFixed(1)} MiB`;

function undeployForm(name: string, version?: string): SafeHtml {
  const label = version === undefined ? `Undeploy every version of ${name}` : 'Undeploy';
  return html`<form method="post" action="/tydra/packages/${encodeURIComponent(name)}/undeploy">
    ${version === undefined ? '' : html`<input type="hidden" name="version" value="${version}" />`}<button
      type="submit"
    >
      ${label}
    </button>
  </form>`;
}

function versionRow(name: string, version: PackageVersionUse, admin: boolean, now: number): SafeHtml {
  const lease = version.leaseMs > 0 ? `${Math.ceil(version.leaseMs / 1000)} s left` : 'none';
  const action = admin && !version.undeployed ? undeployForm(name, version.sha1) : '';
  return html`<tr>
    <td title="${version.sha1}">${version.sha1.slice(0, 12)}</td>
    <td>${new Date(version.deployedAt).toISOString()}</td>
    <td>${bytes(version.size)}</td>
    <td>${version.references}</td>
    <td>${version.latest ? 'latest' : ''}</td>
    <td>${version.undeployed ? 'undeployed' : ''}</td>
    <td>${lease}</td>
    <td>${version.idleSince === undefined ? '' : `idle ${Math.round((now - version.idleSince) / 1000)} s`}</td>
    <td>${action}</td>
  </tr>`;
}

export function packagesBody(packages: PackageListing[], admin: boolean, now = Date.now()): SafeHtml {
  const prune = admin
    ? html`<form method="post" action="/tydra/packages/prune">
        <input type="hidden" name="mode" value="dry-run" /> <button type="submit">Prune… (dry run first)</button>
      </form>`
    : '';
  if (packages.length === 0) {
    return html`<p>No package is deployed.</p>
      ${prune}`;
  }
  const sections = packages.map(
    (pkg) =>
      html`<h2 id="package-${pkg.name}">${pkg.name}</h2>
        <table>
          <thead>
            <tr>
              <th>version</th>
              <th>deployed</th>
              <th>size</th>
              <th>references</th>
              <th>latest</th>
              <th>undeployed</th>
              <th>lease</th>
              <th>idle</th>
              <th></th>
            </tr>
          </thead>
          <tbody>
            ${pkg.versions.map((version) => versionRow(pkg.name, version, admin, now))}
          </tbody>
        </table>
        ${admin && pkg.latest !== null ? undeployForm(pkg.name) : ''}`,
  );
  return html`${sections}
    <div>${prune}</div>`;
}

/** A prune report; for a dry run, with the button that prunes for real (admin only reaches it). */
export function pruneBody(report: PruneReport): SafeHtml {
  const removed = report.removed.map(
    (d) =>
      html`<tr>
        <td>${d.name}@${d.sha1.slice(0, 12)}</td>
        <td>${d.reason}</td>
      </tr>`,
  );
  const kept = report.kept.map(
    (d) =>
      html`<tr>
        <td>${d.name}@${d.sha1.slice(0, 12)}</td>
        <td>${d.reason}</td>
      </tr>`,
  );
  const confirm = report.dryRun
    ? html`<form method="post" action="/tydra/packages/prune">
          <input type="hidden" name="mode" value="prune" /> <button type="submit">Prune now</button>
        </form>
        <a href="/tydra/packages">Back</a>`
    : html`<a href="/tydra/packages">Back to the packages</a>`;
  return html`<p>
      ${report.dryRun ? 'Dry run: nothing was changed.' : 'Pruned.'} ${report.packages} packages, ${report.versions}
      versions looked at; ${report.healed.length} references healed.
    </p>
    <h2>${report.dryRun ? 'Would remove' : 'Removed'} (${report.removed.length})</h2>
    <table id="removed">
      <tbody>
        ${removed}
      </tbody>
    </table>
    <h2>Kept (${report.kept.length})</h2>
    <table id="kept">
      <tbody>
        ${kept}
      </tbody>
    </table>
    ${confirm}`;
}
