/**
 * The network of one TaskInstance: each endpoint its task declares, with the node's verdict
 * (`connect-policy.ts`), and where each connection is reported (`connection-reporter.ts`): the
 * node's metric (every one), the node's log and the TaskInstance's log (refusals and failures, so
 * whoever reads it learns why a connection closed at once; the first few of each endpoint).
 *
 * A simple task's sandbox, and split and reduce, get both at once (`taskNetwork`). A parallel
 * task's work sandboxes, many per instance on a node, share the verdicts (`judgeEndpoints`, said
 * once in the log) and each reports its connections to the unit it runs (`connectionReporter`).
 */
import type { SandboxNetworkOptions } from '../../../sandbox/launcher/network/sandbox-network.js';
import type { EndpointAccess } from '../../../sandbox/launcher/network/loopback-plan.js';
import { parseEndpoint, type TaskNetwork } from '../../core/network-endpoint.js';
import { allowingPattern, type ConnectPattern } from './connect-policy.js';
import { connectionReporter, type ConnectionReporterContext } from './connection-reporter.js';

export interface TaskNetworkContext extends ConnectionReporterContext {
  nodeId: string;
  policy: readonly ConnectPattern[];
}

/** The sandbox's network options, or undefined when the task declares no endpoint. */
export function taskNetwork(
  declared: TaskNetwork | undefined,
  context: TaskNetworkContext,
): SandboxNetworkOptions | undefined {
  const endpoints = judgeEndpoints(declared, context);
  return endpoints === undefined ? undefined : { endpoints, ...connectionReporter(context) };
}

/**
 * Each declared endpoint, allowed by this node or not; what is not served is said in the log.
 * Undefined when the task declares none.
 */
export function judgeEndpoints(
  declared: TaskNetwork | undefined,
  context: Pick<TaskNetworkContext, 'nodeId' | 'policy' | 'log'>,
): EndpointAccess[] | undefined {
  if (declared === undefined || declared.connect.length === 0) {
    return undefined;
  }
  const { nodeId, policy, log } = context;
  return declared.connect.map((text) => {
    const endpoint = parseEndpoint(text);
    const allowed = allowingPattern(policy, endpoint) !== undefined;
    if (!allowed) {
      log(`network: ${text} is not allowed on node ${nodeId} (--allow-connect); connections to it are refused`);
    } else if (endpoint.port < 1024 && process.getuid?.() !== 0) {
      // See `sandbox/launcher/network/sandbox-network.ts`: only root can open such a port in a sandbox.
      log(`network: ${text} is not served on node ${nodeId}: a port below 1024 needs a node running as root`);
    }
    return { ...endpoint, allowed };
  });
}
