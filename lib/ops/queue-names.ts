/** Which node a board queue belongs to: the inverse of `nodeQueueName`. */
import { nodeQueueName } from '../../queues/node.js';

const NODE_QUEUE_PREFIX = nodeQueueName('');

/** The node id of a `node.<id>` queue; undefined for any other queue. */
export function nodeIdOfQueue(queueName: string): string | undefined {
  return queueName.startsWith(NODE_QUEUE_PREFIX) && queueName.length > NODE_QUEUE_PREFIX.length
    ? queueName.slice(NODE_QUEUE_PREFIX.length)
    : undefined;
}
