/**
 * Where one sandbox's connections are reported: every one in the node's metric
 * (`tydra_sandbox_connections_total`), and only the first few of each endpoint and outcome in the
 * node's log and, for refusals and failures, the TaskInstance's log. The rest are counted, and
 * said in one line when the sandbox's network closes. A task can make thousands of connections a
 * second, each refused at once: a line for each would let it fill the node's log (and the
 * TaskInstance's, crowding out its own lines) and spend the node's CPU writing them.
 */
import type { ConnectionEvent, SandboxNetworkOptions } from '../../../sandbox/launcher/network/sandbox-network.js';
import type { Logger } from '../../core/logger.js';
import type { NodeMetrics } from '../node-metrics.js';

/** Connections of one sandbox logged per endpoint and outcome; the ones after are only counted. */
export const LOGGED_CONNECTIONS = 3;

export interface ConnectionReporterContext {
  instanceId: string;
  logger: Logger;
  metrics: Pick<NodeMetrics, 'connection'>;
  /** A line in the TaskInstance's log. */
  log: (line: string) => void;
}

/** How many connections of one sandbox went to one endpoint with one outcome. */
interface Tally {
  endpoint: string;
  outcome: ConnectionEvent['outcome'];
  count: number;
}

/** A sandbox's `onConnection` and `onClose`; one reporter per sandbox (its counts are the sandbox's). */
export function connectionReporter(
  context: ConnectionReporterContext,
): Required<Pick<SandboxNetworkOptions, 'onConnection' | 'onClose'>> {
  const { instanceId, logger, metrics, log } = context;
  // Keyed by endpoint and outcome: at most 3 per declared endpoint (32 at most), whatever the task does.
  const tallies = new Map<string, Tally>();
  const onConnection = (event: ConnectionEvent): void => {
    metrics.connection(event.outcome);
    const endpoint = `${event.host}:${event.port}`;
    const key = `${endpoint} ${event.outcome}`;
    let tally = tallies.get(key);
    if (tally === undefined) {
      tally = { endpoint, outcome: event.outcome, count: 0 };
      tallies.set(key, tally);
    }
    tally.count += 1;
    if (tally.count > LOGGED_CONNECTIONS) {
      return;
    }
    const fields = { instanceId, host: event.host, port: event.port, outcome: event.outcome, reason: event.reason };
    if (event.outcome === 'opened') {
      logger.info(fields, 'sandbox connection opened');
      return;
    }
    logger.warn(fields, `sandbox connection ${event.outcome}`);
    // The summary comes when the sandbox ends, maybe after the result: say now that lines stop.
    const more =
      tally.count === LOGGED_CONNECTIONS
        ? `; more ${event.outcome} connections to ${endpoint} are counted, not logged`
        : '';
    log(`network: connection to ${endpoint} ${event.outcome}${event.reason ? ` (${event.reason})` : ''}${more}`);
  };
  const onClose = (): void => {
    const unlogged = [...tallies.values()].filter((tally) => tally.count > LOGGED_CONNECTIONS);
    tallies.clear();
    if (unlogged.length === 0) {
      return;
    }
    const counts = unlogged.map(({ endpoint, outcome, count }) => ({
      endpoint,
      outcome,
      unlogged: count - LOGGED_CONNECTIONS,
      total: count,
    }));
    const problems = counts.filter((count) => count.outcome !== 'opened');
    if (problems.length === 0) {
      logger.info({ instanceId, connections: counts }, 'sandbox connections not logged');
      return;
    }
    logger.warn({ instanceId, connections: counts }, 'sandbox connections not logged');
    const said = problems.map(
      ({ endpoint, outcome, unlogged, total }) =>
        `${connections(unlogged)} to ${endpoint} ${outcome} (${total.toLocaleString('en-US')} in all)`,
    );
    log(`network: not logged: ${said.join('; ')}`);
  };
  return { onConnection, onClose };
}

function connections(count: number): string {
  return `${count.toLocaleString('en-US')} more connection${count === 1 ? '' : 's'}`;
}
