/**
 * Bull Board over every tydra queue: `tasks`, each node's `node.<id>` and `maintenance`, kept
 * current as nodes come and go (the registry is re-read every `refreshMs` and the boards' queue
 * lists replaced). Two boards over the same queues, one per role (see `board-queues.ts`): the
 * gate (`dashboard-auth.ts`) authenticates each request and hands it to its role's board.
 * Dashboard access is Redis access: beyond loopback the options refuse to start without users.
 */
import { createServer, type Server } from 'node:http';

import { createBullBoard } from '@bull-board/api';
import { ExpressAdapter } from '@bull-board/express';
import { Queue } from 'bullmq';
import type { Registry } from 'prom-client';
import express from 'express';
import type { Redis } from 'ioredis';

import type { Logger } from '../core/logger.js';
import { tydraMetrics } from '../core/metrics.js';
import { NodeRegistry } from '../cluster/node-registry.js';
import { boardAdapter, boardQueueNames } from './board-queues.js';
import { adminOnly, authenticate, type DashboardLocals, loopbackHostsOnly, sameOrigin } from './dashboard-auth.js';
import {
  type CompiledDashboardOptions,
  compileDashboardOptions,
  type DashboardOptions,
  type DashboardRole,
} from './dashboard-options.js';
import { type InstancePartsDeps, readInstanceParts } from './instance-parts.js';
import { storedData } from './job-display.js';
import { dashboardMetricsText } from './metrics-text.js';
import { nodePauseHandler, QUEUE_PAUSE_PATH, QUEUE_RESUME_PATH } from './node-pause.js';
import { RUN_PRUNE_NOW_PATH, runPruneNow } from './run-prune-now.js';
import {
  refuseChildrenRemoval,
  refuseEmptyWhileWaiting,
  refuseObliterate,
  refuseUnendedClean,
  refuseUnendedDelete,
  TASK_CHILDREN_REMOVAL_PATH,
  TASK_DELETE_PATH,
  TASKS_CLEAN_PATH,
  TASKS_EMPTY_PATH,
  TASKS_OBLITERATE_PATH,
} from './task-guards.js';
import { TYDRA_PAGES_PATH, tydraPages } from './tydra-pages.js';
import { Tydra } from '../client/client.js';
import { MAINTENANCE_QUEUE } from '../../queues/maintenance.js';
import { type NodeJobData, nodeQueueName } from '../../queues/node.js';
import { TASKS_QUEUE, type TaskInstanceData } from '../../queues/tasks.js';
import { drainNode, type NodeDrainDeps, resumeNode } from '../master/node-drain.js';
import { QUIT_MS, settlesWithin } from '../core/bounded-close.js';
import { createRedis, logErrors, watchConnection } from '../redis/connection.js';
import { createKeys, type Keyspace } from '../redis/keys.js';
import { dropConnections } from '../redis/force-disconnect.js';

/** How long the dashboard's graceful close may take before it force-closes. */
const CLOSE_MS = 3000;

const ROLES: DashboardRole[] = ['admin', 'read-only'];

interface RoleBoard {
  board: ReturnType<typeof createBullBoard>;
  router: express.Router;
}

function createRoleBoard(role: DashboardRole): RoleBoard {
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  const board = createBullBoard({
    queues: [],
    serverAdapter,
    options: {
      uiConfig: {
        boardTitle: role === 'admin' ? 'tydra' : 'tydra (read-only)',
        sortQueues: false,
        jobDetails: { defaultTab: 'Logs' },
        miscLinks: [
          { text: 'Nodes', url: `${TYDRA_PAGES_PATH}/nodes` },
          { text: 'Packages', url: `${TYDRA_PAGES_PATH}/packages` },
        ],
      },
    },
  });
  return { board, router: serverAdapter.getRouter() as express.Router };
}

export class Dashboard {
  readonly options: CompiledDashboardOptions;
  private readonly logger: Logger;
  private readonly redis: Redis;
  /** Every key and queue of the dashboard's namespace. */
  private readonly keys: Keyspace;
  private readonly queues = new Map<string, Queue>();
  private server: Server | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly boards = new Map<DashboardRole, RoleBoard>();
  private closing: Promise<void> | undefined;
  private unwatchNodes: (() => void) | undefined;
  /** The client behind the tydra pages (statuses, cancel, packages), on its own connection. */
  private tydra: Tydra | undefined;
  /** The URL the dashboard answers on, once started. */
  url = '';

  constructor(options: DashboardOptions = {}) {
    this.options = compileDashboardOptions(options);
    this.logger = this.options.logger.child({ component: 'dashboard' });
    this.redis = createRedis(this.options.redisUrl);
    this.keys = createKeys(this.options.namespace);
    watchConnection(this.redis, this.logger, 'dashboard');
  }

  async start(): Promise<string> {
    for (const role of ROLES) {
      this.boards.set(role, createRoleBoard(role));
    }
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.options.refreshMs);
    const registry = this.options.metrics;
    this.unwatchNodes = tydraMetrics(registry).watchAliveNodes(
      async () => (await new NodeRegistry(this.redis, this.keys).live()).length,
    );

    const app = express();
    app.disable('x-powered-by');
    if (this.options.users.length === 0 && !this.options.insecureNoAuth) {
      app.use(loopbackHostsOnly());
    }
    app.use(authenticate(this.options.users));
    app.use(sameOrigin());
    this.metricsRoute(app, registry);
    this.tydraRoutes(app);
    this.tydra = new Tydra({ redis: this.options.redisUrl, namespace: this.options.namespace, logger: this.logger });
    app.use(
      TYDRA_PAGES_PATH,
      tydraPages({
        tydra: this.tydra,
        nodes: () => new NodeRegistry(this.redis, this.keys).list(),
        nodeQueue: (nodeId) => this.nodeQueueState(nodeId),
        drain: (nodeId) => drainNode(this.drainDeps(), nodeId),
        resume: (nodeId) => resumeNode(this.drainDeps(), nodeId),
        parts: (id, failuresFrom) => readInstanceParts(this.partsDeps(), id, failuresFrom),
      }),
    );
    app.use((req, res: express.Response<unknown, DashboardLocals>, next) => {
      const board = this.boards.get(res.locals.role);
      if (board === undefined) {
        next(new Error(`internal error: no board for role ${res.locals.role}; please file an issue`));
        return;
      }
      board.router(req, res, next);
    });
    this.server = await this.listen(app);
    const address = this.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : this.options.port;
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    this.url = `http://${host}:${port}/`;
    const roles = this.options.users.map((user) => user.role);
    if (this.options.insecureNoAuth) {
      this.logger.warn(
        { dashboardUrl: this.url },
        'the dashboard is served WITHOUT authentication (--insecure-no-auth)',
      );
    }
    this.logger.info(
      { dashboardUrl: this.url, roles: roles.length > 0 ? roles.join(',') : 'none (open)' },
      'dashboard started',
    );
    return this.url;
  }

  /**
   * Serves `app` on the configured address. Not `app.listen`: Express 5 calls its callback on a
   * listen error too, so a port in use would look like a started dashboard (and its URL would
   * open the other process's).
   */
  private async listen(app: express.Express): Promise<Server> {
    const server = createServer(app);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.options.port, this.options.host, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      // The refresh timer and the Redis connections are open already: a caller that gives up on
      // a dashboard that did not start must not be kept alive by them.
      await this.close();
      throw error;
    }
    server.on('error', (error) => this.logger.warn({ err: error.message }, 'dashboard server error'));
    return server;
  }

  /** `/metrics`, behind the gate: read-only users may read it, nobody else. */
  private metricsRoute(app: express.Express, registry: Registry): void {
    app.get('/metrics', async (_req, res) => {
      try {
        const text = await dashboardMetricsText(registry, [...this.queues.values()]);
        res.set('content-type', registry.contentType).send(text);
      } catch (error) {
        this.logger.warn({ err: (error as Error).message }, 'could not collect the metrics');
        res.status(500).type('text/plain').send('could not collect the metrics\n');
      }
    });
  }

  /** What tydra answers before the board: its own actions, and what it changes in the board's. */
  private tydraRoutes(app: express.Express): void {
    app.put(
      RUN_PRUNE_NOW_PATH,
      adminOnly(),
      runPruneNow(() => this.queues.get(MAINTENANCE_QUEUE)),
    );
    app.put(
      TASK_DELETE_PATH,
      refuseUnendedDelete(() => this.boardQueue(TASKS_QUEUE)),
    );
    app.put(TASK_CHILDREN_REMOVAL_PATH, refuseChildrenRemoval());
    app.put(TASKS_CLEAN_PATH, refuseUnendedClean());
    app.put(
      TASKS_EMPTY_PATH,
      refuseEmptyWhileWaiting(() => this.boardQueue(TASKS_QUEUE)),
    );
    app.put(TASKS_OBLITERATE_PATH, refuseObliterate());
    app.put(
      QUEUE_PAUSE_PATH,
      nodePauseHandler('pause', () => this.drainDeps(), this.logger),
    );
    app.put(
      QUEUE_RESUME_PATH,
      nodePauseHandler('resume', () => this.drainDeps(), this.logger),
    );
    // The board's "edit data" of a TaskInstance sends back the ISO times it showed: store numbers.
    app.patch(`/api/queues/${TASKS_QUEUE}/:jobId/update-data`, express.json(), (req, _res, next) => {
      const body: unknown = req.body;
      if (typeof body === 'object' && body !== null && 'jobData' in body) {
        Object.assign(body, { jobData: storedData(body.jobData) });
      }
      next();
    });
  }

  /** Jobs active in a node's queue and whether it is paused; undefined until the board lists it. */
  private async nodeQueueState(nodeId: string): Promise<{ running: number; paused: boolean } | undefined> {
    const queue = this.queues.get(nodeQueueName(nodeId));
    if (queue === undefined) {
      return undefined;
    }
    const [running, paused] = await Promise.all([queue.getActiveCount(), queue.isPaused()]);
    return { running, paused };
  }

  /** What the TaskInstance page reads a TaskInstance's workunits and steps with. */
  private partsDeps(): InstancePartsDeps {
    const tydra = this.tydra;
    if (tydra === undefined) {
      throw new Error('internal error: the tydra pages answered before their client was made; please file an issue');
    }
    return {
      redis: this.redis,
      keys: this.keys,
      tasksQueue: this.boardQueue(TASKS_QUEUE),
      status: (id) => tydra.run(id).status(),
    };
  }

  /** What draining a node from the board needs: the dashboard's connection and queues. */
  private drainDeps(): NodeDrainDeps {
    return {
      redis: this.redis,
      keys: this.keys,
      registry: new NodeRegistry(this.redis, this.keys),
      logger: this.logger,
      // The board's queues carry no data type: these two hold TaskInstances and node jobs.
      tasksQueue: this.boardQueue(TASKS_QUEUE) as Queue<TaskInstanceData>,
      nodeQueue: (nodeId) => this.boardQueue(nodeQueueName(nodeId)) as Queue<NodeJobData>,
    };
  }

  /** The board's queue of that name, opened now if the board does not list it (yet). */
  private boardQueue(name: string): Queue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix });
      logErrors(queue, (error) => this.logger.warn({ err: error.message, queue: name }, 'queue error'));
      this.queues.set(name, queue);
    }
    return queue;
  }

  /** Names of the queues on the board right now. */
  get queueNames(): string[] {
    return [...this.queues.keys()];
  }

  /** Re-reads the node registry and replaces the board's queues. */
  async refresh(): Promise<void> {
    try {
      const nodes = await new NodeRegistry(this.redis, this.keys).list();
      const wanted = boardQueueNames(nodes.map((node) => node.id));
      for (const name of wanted) {
        this.boardQueue(name);
      }
      for (const [name, queue] of this.queues) {
        if (!wanted.includes(name)) {
          this.queues.delete(name);
          await queue.close();
        }
      }
      const ordered = wanted.flatMap((name) => this.queues.get(name) ?? []);
      for (const [role, { board }] of this.boards) {
        board.replaceQueues(ordered.map((queue) => boardAdapter(queue, role)));
      }
    } catch (error) {
      this.logger.warn({ err: (error as Error).message }, 'could not refresh the queue list');
    }
  }

  /**
   * Stops serving and closes its connections; what has not closed within {@link CLOSE_MS} (open
   * HTTP requests, a Redis that is gone) is force-closed. Resolves within 5 s whatever Redis
   * does (the dashboard has no drain timeout: it runs no work). Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.closeInternal();
    return this.closing;
  }

  private async closeInternal(): Promise<void> {
    clearInterval(this.timer);
    this.unwatchNodes?.();
    const graceful = this.closeGracefully();
    if (!(await settlesWithin(graceful, CLOSE_MS))) {
      this.logger.warn('the dashboard did not close in time (is Redis down?): force-closing its connections');
      this.server?.closeAllConnections();
      dropConnections([...this.queues.values(), this.redis]);
      await settlesWithin(graceful, QUIT_MS);
    }
  }

  private async closeGracefully(): Promise<void> {
    const server = this.server;
    const serverClosed = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    // Idle keep-alive connections would hold `close` up; requests under way may finish.
    server?.closeIdleConnections();
    await serverClosed;
    await Promise.allSettled([...this.queues.values()].map((queue) => queue.close()));
    await this.tydra?.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}
