/**
 * The Redis side of the cost model (README "Scaling out"), for `cost-model.ts`: memory per
 * waiting and per finished TaskInstance, and bytes on the wire, Redis CPU time, commands and
 * round trips per TaskInstance. Everything is read from `INFO` on a connection that sends
 * nothing else (its own share is taken out), and no MONITOR may be open meanwhile (Redis counts
 * what it streams to a monitor as output bytes and spends CPU on it).
 */
import { Redis } from 'ioredis';

/** The `INFO` counters the cost model uses. */
export interface RedisCounters {
  usedMemory: number;
  netInputBytes: number;
  netOutputBytes: number;
  /** `used_cpu_user` + `used_cpu_sys`, in ms: the server's CPU time, its one command thread and the rest. */
  cpuMs: number;
  /** Every command executed, the calls Lua scripts make included: the sum of `INFO commandstats` calls. */
  commands: number;
  /** `total_reads_processed`: the read events the server handled, i.e. round trips. */
  reads: number;
}

function countersFrom(text: string): RedisCounters {
  const field = (name: string): number => {
    const value = Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(text)?.[1]);
    if (!Number.isFinite(value)) {
      throw new Error(`Expected INFO to report ${name}, got ${JSON.stringify(text.slice(0, 80))}…`);
    }
    return value;
  };
  return {
    usedMemory: field('used_memory'),
    netInputBytes: field('total_net_input_bytes'),
    netOutputBytes: field('total_net_output_bytes'),
    cpuMs: (field('used_cpu_user') + field('used_cpu_sys')) * 1000,
    commands: [...text.matchAll(/^cmdstat_[^:]+:calls=(\d+)/gm)].reduce((sum, match) => sum + Number(match[1]), 0),
    reads: field('total_reads_processed'),
  };
}

export async function readCounters(redis: Redis): Promise<RedisCounters> {
  return countersFrom(await redis.info('all'));
}

/** `INFO all` as ioredis sends it (`*2 $4 info $3 all`, RESP): what one reading adds to the input bytes. */
const INFO_REQUEST_BYTES = 23;

type Counter = Exclude<keyof RedisCounters, 'usedMemory'>;

/** Per TaskInstance, what a window of `tasks` TaskInstances added beyond an idle window's rate. */
export interface WireCost {
  netInputBytes: number;
  netOutputBytes: number;
  cpuMs: number;
  commands: number;
  roundTrips: number;
  /** 1 s of one core divided by `cpuMs`: the TaskInstances per second one Redis could take at most. */
  tasksPerCoreSecond: number;
  idlePerSecond: { netInputBytes: number; netOutputBytes: number; cpuMs: number; commands: number; roundTrips: number };
}

interface Window {
  ms: number;
  delta: RedisCounters;
}

/**
 * Runs `fn` between two `INFO all` and returns the deltas without the measuring connection's own
 * share: Redis counts a request's bytes and read before running it and its command and reply after,
 * so the window holds the first INFO's command and reply (a bulk string of several KB) and the
 * second's request and read.
 */
async function measure(url: string, fn: () => Promise<void>): Promise<Window> {
  const stats = new Redis(url);
  try {
    const beforeText = await stats.info('all');
    const before = countersFrom(beforeText);
    const started = performance.now();
    await fn();
    const ms = performance.now() - started;
    const after = await readCounters(stats);
    const replyBytes = Buffer.byteLength(beforeText);
    return {
      ms,
      delta: {
        usedMemory: after.usedMemory - before.usedMemory,
        netInputBytes: after.netInputBytes - before.netInputBytes - INFO_REQUEST_BYTES,
        netOutputBytes: after.netOutputBytes - before.netOutputBytes - `$${replyBytes}\r\n\r\n`.length - replyBytes,
        cpuMs: after.cpuMs - before.cpuMs,
        commands: after.commands - before.commands - 1,
        reads: after.reads - before.reads - 1,
      },
    };
  } finally {
    stats.disconnect();
  }
}

const round = (value: number, digits = 0): number => Math.round(value * 10 ** digits) / 10 ** digits;

/**
 * The shortest idle window: the idle cluster's traffic comes in bursts (a node's heartbeat every
 * 5 s, blocking pops that time out), so a window of a second or two would catch one or none.
 */
const MIN_IDLE_MS = 10_000;

/**
 * Runs `batch` (which runs `tasks` TaskInstances), then an idle window as long (at least
 * `MIN_IDLE_MS`), and returns the per-TaskInstance cost beyond the idle rate.
 */
export async function wireCost(url: string, tasks: number, batch: () => Promise<void>): Promise<WireCost> {
  const busy = await measure(url, batch);
  const idleMs = Math.max(busy.ms, MIN_IDLE_MS);
  const idle = await measure(url, () => new Promise((resolve) => setTimeout(resolve, idleMs)));
  const scale = busy.ms / idle.ms;
  const per = (key: Counter): number => (busy.delta[key] - idle.delta[key] * scale) / tasks;
  const cpuMs = per('cpuMs');
  const perSecond = (key: Counter): number => (idle.delta[key] * 1000) / idle.ms;
  return {
    netInputBytes: round(per('netInputBytes')),
    netOutputBytes: round(per('netOutputBytes')),
    cpuMs: round(cpuMs, 3),
    commands: round(per('commands'), 1),
    roundTrips: round(per('reads'), 1),
    tasksPerCoreSecond: cpuMs > 0 ? round(1000 / cpuMs) : Number.POSITIVE_INFINITY,
    idlePerSecond: {
      netInputBytes: round(perSecond('netInputBytes')),
      netOutputBytes: round(perSecond('netOutputBytes')),
      cpuMs: round(perSecond('cpuMs'), 2),
      commands: round(perSecond('commands'), 1),
      roundTrips: round(perSecond('reads'), 1),
    },
  };
}

/** Redis memory per TaskInstance: waiting (submitted, nothing running) and finished (kept by retention). */
export interface MemoryCost {
  tasks: number;
  waitingBytes: number;
  finishedBytes: number;
}

/**
 * `submitAll` submits `tasks` TaskInstances while no master or node runs; `runAll` starts them and
 * waits for every result. Memory is read before, after the submits, and after the results.
 */
export async function memoryCost(
  url: string,
  tasks: number,
  submitAll: () => Promise<void>,
  runAll: () => Promise<void>,
): Promise<MemoryCost> {
  const stats = new Redis(url);
  try {
    const before = (await readCounters(stats)).usedMemory;
    await submitAll();
    const waiting = (await readCounters(stats)).usedMemory;
    await runAll();
    const finished = (await readCounters(stats)).usedMemory;
    return {
      tasks,
      waitingBytes: round((waiting - before) / tasks),
      finishedBytes: round((finished - before) / tasks),
    };
  } finally {
    stats.disconnect();
  }
}
