/**
 * The tydra pages beside Bull Board, under `/tydra/`: Nodes, Packages and one TaskInstance (see
 * `nodes-page.ts`, `packages-page.ts`, `instance-page.ts`). Behind the dashboard's gate (auth and
 * the same-origin check on every POST); the actions — cancel, undeploy, prune — are for admins
 * only, and a read-only user sees no buttons. Forms post back and are answered with a redirect
 * (303) or a page, so the pages work without JavaScript.
 */
import express from 'express';
import { z } from 'zod';

import type { Tydra } from '../client/client.js';
import type { NodeInfo } from '../cluster/node-registry.js';
import { TaskNotFoundError, TydraError, UnknownTaskError } from '../core/errors.js';
import { parsePackageName } from '../packages/task-ref.js';
import { adminOnly, type DashboardLocals } from './dashboard-auth.js';
import { instanceBody } from './instance-page.js';
import type { InstanceParts } from './instance-parts.js';
import { nodesBody } from './nodes-page.js';
import { packagesBody, pruneBody } from './packages-page.js';
import { html, page } from './page-html.js';
import { TYDRA_PAGES_PATH } from './tydra-pages-path.js';

export { TYDRA_PAGES_PATH };

export interface TydraPagesContext {
  /** A client on the dashboard's Redis: statuses, cancel, packages, prune. */
  tydra: Tydra;
  nodes: () => Promise<NodeInfo[]>;
  /** Jobs active in a node's queue and whether it is paused; undefined when unknown. */
  nodeQueue: (nodeId: string) => Promise<{ running: number; paused: boolean } | undefined>;
  /** Drain a node (no new work; what waits there moves) or resume it (see `lib/master/node-drain.ts`). */
  drain: (nodeId: string) => Promise<unknown>;
  resume: (nodeId: string) => Promise<unknown>;
  /** A parallel TaskInstance's workunits (failures from the `failuresFrom`-th), a sequence's steps. */
  parts: (id: string, failuresFrom: number) => Promise<InstanceParts | undefined>;
}

const PAGE_POLICY = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

type Res = express.Response<unknown, DashboardLocals>;

const idSchema = z.string().min(1).max(256);
const undeploySchema = z.object({
  version: z
    .string()
    .regex(/^[0-9a-f]{4,40}$/)
    .optional(),
});
const instanceQuerySchema = z.object({
  cancel: z.enum(['removed', 'cancelling', 'finished']).optional(),
  failures: z.coerce.number().int().min(0).max(1_000_000_000).optional(),
});
const pruneSchema = z.object({ mode: z.enum(['dry-run', 'prune']) });

/** An input that does not fit, named in the 400 page. */
class PageInputError extends TydraError {}

function parse<T>(schema: z.ZodType<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new PageInputError(`Expected ${what}, got ${JSON.stringify(value)?.slice(0, 200) ?? 'nothing'}`);
  }
  return parsed.data;
}

/** Runs `handler`, and answers an error with a page that says what went wrong (escaped). */
function handle(handler: (req: express.Request, res: Res) => Promise<void>) {
  return (req: express.Request, res: Res, next: express.NextFunction): void => {
    handler(req, res).catch((error: unknown) => {
      if (!(error instanceof TydraError)) {
        next(error);
        return;
      }
      // Everything else (a bad id or form, an invalid package name) is the request's fault.
      const missing = error instanceof TaskNotFoundError || error instanceof UnknownTaskError;
      res
        .status(missing ? 404 : 400)
        .type('html')
        .send(page(missing ? 'Not found' : 'Not done', html`<p>${error.message}</p>`));
    });
  };
}

async function listPackages(tydra: Tydra) {
  const names = await tydra.packageNames();
  return Promise.all(names.sort().map(async (name) => ({ name, ...(await tydra.packageVersions(name)) })));
}

/**
 * No scripts, nothing from elsewhere, and never inside another site's frame: the same-origin
 * check cannot tell a click on a Cancel button framed by a hostile page (clickjacking).
 */
function pageHeaders(_req: express.Request, res: express.Response, next: express.NextFunction): void {
  res.setHeader('Content-Security-Policy', PAGE_POLICY);
  res.setHeader('X-Frame-Options', 'DENY');
  next();
}

/** `/nodes` and its Drain / Resume. */
function nodeRoutes(router: express.Router, context: TydraPagesContext): void {
  router.get(
    '/nodes',
    handle(async (_req, res) => {
      const nodes = (await context.nodes()).sort((a, b) => a.id.localeCompare(b.id));
      const rows = await Promise.all(
        nodes.map(async (node) => {
          const queue = await context.nodeQueue(node.id);
          return { node, running: queue?.running, paused: queue?.paused };
        }),
      );
      res.type('html').send(page('Nodes', nodesBody(rows, Date.now(), res.locals.role === 'admin')));
    }),
  );
  for (const action of ['drain', 'resume'] as const) {
    router.post(
      `/nodes/:id/${action}`,
      adminOnly(),
      handle(async (req, res) => {
        const id = parse(idSchema, req.params.id, 'a node id');
        await context[action](id);
        res.redirect(303, `${TYDRA_PAGES_PATH}/nodes`);
      }),
    );
  }
}

/** `/instances/:id` and its Cancel. */
function instanceRoutes(router: express.Router, context: TydraPagesContext): void {
  const { tydra } = context;
  router.get(
    '/instances/:id',
    handle(async (req, res) => {
      const id = parse(idSchema, req.params.id, 'a TaskInstance id');
      const query = parse(
        instanceQuerySchema,
        req.query,
        'no query, or cancel=removed|cancelling|finished and failures=<first failed workunit shown>',
      );
      const status = await tydra.run(id).status();
      const parts = await context.parts(id, query.failures ?? 0);
      const body = instanceBody(status, { canCancel: res.locals.role === 'admin', cancelled: query.cancel, parts });
      res.type('html').send(page(`TaskInstance ${id}`, body));
    }),
  );

  router.post(
    '/instances/:id/cancel',
    adminOnly(),
    handle(async (req, res) => {
      const id = parse(idSchema, req.params.id, 'a TaskInstance id');
      const { outcome } = await tydra.cancel(id);
      res.redirect(303, `${TYDRA_PAGES_PATH}/instances/${encodeURIComponent(id)}?cancel=${outcome}`);
    }),
  );
}

/** `/packages`, its undeploy buttons and the prune (dry run, then for real). */
function packageRoutes(router: express.Router, tydra: Tydra): void {
  router.get(
    '/packages',
    handle(async (_req, res) => {
      res.type('html').send(page('Packages', packagesBody(await listPackages(tydra), res.locals.role === 'admin')));
    }),
  );

  router.post(
    '/packages/prune',
    adminOnly(),
    handle(async (req, res) => {
      const { mode } = parse(pruneSchema, req.body, 'a form with mode dry-run or prune');
      const report = await tydra.prune({ dryRun: mode === 'dry-run' });
      res.type('html').send(page(report.dryRun ? 'Prune: dry run' : 'Prune', pruneBody(report)));
    }),
  );

  router.post(
    '/packages/:name/undeploy',
    adminOnly(),
    handle(async (req, res) => {
      const name = parsePackageName(parse(idSchema, req.params.name, 'a package name'));
      const { version } = parse(undeploySchema, req.body ?? {}, 'an optional version (a sha1 prefix)');
      await tydra.undeploy(name, version);
      res.redirect(303, `${TYDRA_PAGES_PATH}/packages`);
    }),
  );
}

/** The router of the tydra pages, mounted at {@link TYDRA_PAGES_PATH} after the gate. */
export function tydraPages(context: TydraPagesContext): express.Router {
  const router = express.Router();
  router.use(express.urlencoded({ extended: false, limit: '4kb' }));
  router.use(pageHeaders);
  nodeRoutes(router, context);
  instanceRoutes(router, context);
  packageRoutes(router, context.tydra);
  return router;
}
