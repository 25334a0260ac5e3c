/**
 * A namespace: one tydra installation inside a Redis. Every key and queue of the installation
 * carries the hash tag `{NAME}` (see `lib/redis/keys.ts`), so on a Redis Cluster one namespace
 * is one hash slot (BullMQ flows and tydra's Lua scripts need all their keys in one slot) and
 * many namespaces spread over the cluster's primaries. Zod-free, so the CLI's `--help` can show
 * the default.
 */

/** The namespace of a component given none. */
export const DEFAULT_NAMESPACE = 'tydra';

/** Longest namespace: it is part of every key, so keep it short. */
export const MAX_NAMESPACE_LENGTH = 32;

/** Lower-case letters, digits, `_` and `-`: no `{`, `}` or `:`, which would change the hash tag or the key layout. */
export const NAMESPACE_PATTERN = /^[a-z0-9_-]+$/;
