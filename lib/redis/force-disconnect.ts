/**
 * Force-closing BullMQ Queues and Workers when Redis is gone.
 *
 * Neither of BullMQ's own ways works then: `close(true)` after a graceful `close()` returns the
 * graceful close's promise, which waits for Redis; and `disconnect()` waits for each ioredis
 * client's `end` event, which a client in `reconnecting` never emits (ioredis clears its retry
 * timer and closes a socket that is already closed), so it waits for ever and never reaches the
 * Worker's blocking connection, which then keeps reconnecting and the process alive.
 * {@link dropConnections} disconnects every underlying client directly and waits for nothing; a
 * client in `reconnecting` is first put back in `wait`, from which ioredis's `disconnect()` ends
 * it at once (status `end`, the `end` event, pending commands rejected with "Connection is
 * closed."). BullMQ's own close steps then finish too, so no timer or retry keeps the process
 * alive.
 */
import type { Redis } from 'ioredis';

/** The part of an ioredis client (or BullMQ's proxy of one) that force-closing uses. */
interface ClientLike {
  status: string;
  disconnect(): void;
}

/** BullMQ's `RedisConnection`, reduced to its (protected) client, which we only disconnect. */
interface ConnectionLike {
  _client?: ClientLike;
}

/** What a BullMQ `Queue` or `Worker` holds: its Redis backend with one or two connections. */
interface ConnectionOwner {
  backend: unknown;
}

/** Disconnects every Redis client of these Queues/Workers (and plain connections) at once. */
export function dropConnections(owners: Array<ConnectionOwner | Redis | undefined>): void {
  for (const owner of owners) {
    if (owner === undefined) {
      continue;
    }
    if ('backend' in owner) {
      const backend = owner.backend as { connection?: ConnectionLike; blockingConnection?: ConnectionLike };
      disconnect(backend.connection?._client);
      disconnect(backend.blockingConnection?._client);
    } else {
      disconnect(owner);
    }
  }
}

function disconnect(client: ClientLike | undefined): void {
  if (client === undefined || client.status === 'end') {
    return;
  }
  if (client.status === 'reconnecting') {
    // See the header: from `reconnecting` ioredis would never reach `end`.
    client.status = 'wait';
  }
  try {
    client.disconnect();
  } catch {
    // Already closed: nothing left to drop.
  }
}
