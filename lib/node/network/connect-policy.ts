/**
 * A node's network policy: the `--allow-connect HOST:PORT` patterns (repeatable; default none,
 * so no task gets any network). A TaskInstance gets an endpoint only when its task declares it
 * and one pattern matches it.
 *
 * The pattern grammar is deliberately small, with no regular expressions:
 * - host: an exact lower-case name (`db.internal`), an IPv4 literal (`127.0.0.1`), `*.suffix`
 *   (any name strictly below `suffix`: `*.internal` matches `db.internal`, not `internal`), or
 *   `*` (any host);
 * - port: a number from 1 to 65535, or `*` (any port).
 */
import { InvalidOptionError } from '../../core/errors.js';
import { isHostName, isIpv4, type NetworkEndpoint, parsePort, splitHostPort } from '../../core/network-endpoint.js';

/** One compiled `--allow-connect` pattern. */
export interface ConnectPattern {
  /** As given, for logs. */
  text: string;
  host: { kind: 'any' } | { kind: 'exact'; name: string } | { kind: 'below'; suffix: string };
  /** undefined: any port. */
  port: number | undefined;
}

/** Why `text` is not a pattern, or undefined when it is one. */
function patternProblem(text: string): string | undefined {
  const parts = splitHostPort(text);
  if (parts === undefined) {
    return 'a `:` before the port';
  }
  if (parts.port !== '*' && parsePort(parts.port) === undefined) {
    return 'a port from 1 to 65535 or `*`';
  }
  const { host } = parts;
  if (host === '*' || isIpv4(host) || isHostName(host)) {
    return undefined;
  }
  if (host.startsWith('*.') && isHostName(host.slice(2))) {
    return undefined;
  }
  return 'a host that is a lower-case name, an IPv4 address, `*.suffix` or `*`';
}

/** Compiles the patterns; throws `InvalidOptionError` naming the first malformed one. */
export function compileConnectPolicy(patterns: readonly string[]): ConnectPattern[] {
  return patterns.map((text) => {
    const problem = patternProblem(text);
    if (problem !== undefined) {
      throw new InvalidOptionError(
        `Expected each \`allowConnect\` pattern (--allow-connect) to be HOST:PORT with ${problem}, got \`${text}\``,
      );
    }
    const parts = splitHostPort(text) ?? { host: '', port: '' };
    const host: ConnectPattern['host'] =
      parts.host === '*'
        ? { kind: 'any' }
        : parts.host.startsWith('*.')
          ? { kind: 'below', suffix: parts.host.slice(1) }
          : { kind: 'exact', name: parts.host };
    return { text, host, port: parts.port === '*' ? undefined : parsePort(parts.port) };
  });
}

/** The pattern that allows `endpoint`, or undefined when none does. */
export function allowingPattern(
  policy: readonly ConnectPattern[],
  endpoint: NetworkEndpoint,
): ConnectPattern | undefined {
  return policy.find((pattern) => {
    if (pattern.port !== undefined && pattern.port !== endpoint.port) {
      return false;
    }
    switch (pattern.host.kind) {
      case 'any':
        return true;
      case 'exact':
        return pattern.host.name === endpoint.host;
      case 'below':
        // An IP literal is never "below" a name.
        return !isIpv4(endpoint.host) && endpoint.host.endsWith(pattern.host.suffix);
    }
  });
}
