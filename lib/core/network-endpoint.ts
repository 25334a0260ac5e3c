/**
 * The `HOST:PORT` grammar of network access: what a task declares (`"network": { "connect":
 * [...] }` in `tydra.json`) and what a node allows (`--allow-connect`, `lib/node/network/`).
 *
 * A host is a lower-case DNS name (`db.internal`, `localhost`) or an IPv4 literal. A declared IPv4
 * literal must be a loopback address (127.0.0.0/8): the sandbox has nothing but its own loopback,
 * where tydra serves each allowed endpoint, so another address could not be reached as written
 * (name such a host by DNS name instead). IPv6 is not supported yet.
 */
import { z } from 'zod';

/** Endpoints one task may declare. */
export const MAX_CONNECT_ENDPOINTS = 32;

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const PORT = /^[1-9]\d{0,4}$/;

/** One declared endpoint, parsed. */
export interface NetworkEndpoint {
  host: string;
  port: number;
}

export function isIpv4(host: string): boolean {
  return IPV4.test(host);
}

export function isLoopbackIpv4(host: string): boolean {
  return isIpv4(host) && host.startsWith('127.');
}

/** A lower-case DNS name whose last label is not all digits (so never mistaken for an address). */
export function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) {
    return false;
  }
  const labels = host.split('.');
  return labels.every((label) => LABEL.test(label)) && !/^\d+$/.test(labels.at(-1) ?? '');
}

/** 1 to 65535, decimal, no leading zero; undefined otherwise. */
export function parsePort(text: string): number | undefined {
  const port = PORT.test(text) ? Number(text) : Number.NaN;
  return port >= 1 && port <= 65_535 ? port : undefined;
}

/** Splits at the last `:`; undefined when there is none. */
export function splitHostPort(text: string): { host: string; port: string } | undefined {
  const at = text.lastIndexOf(':');
  return at <= 0 ? undefined : { host: text.slice(0, at), port: text.slice(at + 1) };
}

/** Why `text` is not an endpoint a task may declare, or undefined when it is one. */
export function endpointProblem(text: string): string | undefined {
  const parts = splitHostPort(text);
  if (parts === undefined) {
    return 'a `:` before the port';
  }
  if (parsePort(parts.port) === undefined) {
    return 'a port from 1 to 65535';
  }
  if (isIpv4(parts.host)) {
    return isLoopbackIpv4(parts.host) ? undefined : 'a loopback IPv4 address (127.x.x.x) or a host name';
  }
  return isHostName(parts.host) ? undefined : 'a lower-case host name or a loopback IPv4 address';
}

/** Parses a declared endpoint; call only on text {@link endpointProblem} accepted. */
export function parseEndpoint(text: string): NetworkEndpoint {
  const parts = splitHostPort(text);
  return { host: parts?.host ?? '', port: parsePort(parts?.port ?? '') ?? 0 };
}

const endpointSchema = z.string().superRefine((text, ctx) => {
  const problem = endpointProblem(text);
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: `HOST:PORT with ${problem}` });
  }
});

/** `"network"` of a task in `tydra.json`. */
export const taskNetworkSchema = z.strictObject({
  /** Endpoints the task connects to, as it writes them (`db.internal:5432`), each at most once. */
  connect: z
    .array(endpointSchema)
    .max(MAX_CONNECT_ENDPOINTS)
    .refine((list) => new Set(list).size === list.length, 'each endpoint once'),
});

export type TaskNetwork = z.output<typeof taskNetworkSchema>;
