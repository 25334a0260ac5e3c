/**
 * What the limits of a TaskInstance are, their defaults, and how their values are written and
 * read (`512 MiB`, `--limit memory=512M`). No zod here: the CLI's `--help` loads this module and
 * must start fast; the schemas live in `limits.ts`, which re-exports all of this.
 */
export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

/** Limits of one TaskInstance. Times in ms, sizes in bytes. */
export interface TaskLimits {
  /** Wall-clock time from start to result. @defaultValue 60 s */
  timeoutMs?: number;
  /** CPU time of all its processes together. @defaultValue 60 s */
  cpuMs?: number;
  /** Memory of all its processes together (cgroup; swap is off). @defaultValue 512 MiB */
  memoryBytes?: number;
  /** Processes and threads at once (cgroup pids). @defaultValue 64 */
  pids?: number;
  /** Open file descriptors per process. @defaultValue 256 */
  openFiles?: number;
  /** Largest file it may write. @defaultValue 64 MiB */
  fileSizeBytes?: number;
  /** Size of its private `/tmp` (a tmpfs). @defaultValue 64 MiB */
  scratchBytes?: number;
  /** Output captured per stream (stdout, stderr, log lines). @defaultValue 1 MiB */
  outputBytes?: number;
}
export type CompiledTaskLimits = Required<TaskLimits>;

export const LIMIT_NAMES = [
  'timeoutMs',
  'cpuMs',
  'memoryBytes',
  'pids',
  'openFiles',
  'fileSizeBytes',
  'scratchBytes',
  'outputBytes',
] as const satisfies ReadonlyArray<keyof TaskLimits>;
export type LimitName = (typeof LIMIT_NAMES)[number];

export const DEFAULT_TASK_LIMITS: CompiledTaskLimits = {
  timeoutMs: 60_000,
  cpuMs: 60_000,
  memoryBytes: 512 * MiB,
  pids: 64,
  openFiles: 256,
  fileSizeBytes: 64 * MiB,
  scratchBytes: 64 * MiB,
  outputBytes: MiB,
};

export const DEFAULT_MAX_TASK_LIMITS: CompiledTaskLimits = {
  timeoutMs: 24 * 3600_000,
  cpuMs: 24 * 3600_000,
  memoryBytes: 16 * GiB,
  pids: 4096,
  openFiles: 65_536,
  fileSizeBytes: 16 * GiB,
  scratchBytes: 16 * GiB,
  outputBytes: 64 * MiB,
};

/** `512 MiB`, `1.5 KiB`, `100 bytes`. */
export function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ['GiB', GiB],
    ['MiB', MiB],
    ['KiB', KiB],
  ] as const) {
    if (bytes >= size) {
      return `${Number((bytes / size).toFixed(2))} ${unit}`;
    }
  }
  return `${bytes} bytes`;
}

/** `60 s`, `1.5 s`, `250 ms`. */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(3))} s` : `${ms} ms`;
}

/**
 * Parses `512MiB`, `1G`, `64k`, `1048576` (bytes) or `90s`, `1.5m`, `2h`, `250ms`, `60000`
 * (milliseconds), for the CLI's `--limit name=value`. Messages name the value as `label` (the
 * CLI's name of the limit, `memory`, unless the caller names its own flag, `--cache-max`).
 */
export function parseLimitValue(name: LimitName, text: string, label = limitFlagOf(name)): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(text.trim());
  if (match === null) {
    throw new TypeError(`Expected a number with an optional unit for ${label}, got \`${text}\``);
  }
  const value = Number(match[1]);
  const unit = (match[2] ?? '').toLowerCase();
  let factor: number | undefined;
  if (name === 'timeoutMs' || name === 'cpuMs') {
    factor = { '': 1, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit];
  } else if (name === 'pids' || name === 'openFiles') {
    factor = unit === '' ? 1 : undefined;
  } else {
    factor = { '': 1, b: 1, k: KiB, kib: KiB, kb: KiB, m: MiB, mib: MiB, mb: MiB, g: GiB, gib: GiB, gb: GiB }[unit];
  }
  if (factor === undefined) {
    throw new TypeError(
      `Expected a unit for ${label} (${name === 'timeoutMs' || name === 'cpuMs' ? 'ms, s, m or h' : name === 'pids' || name === 'openFiles' ? 'a plain count' : 'B, KiB, MiB or GiB'}), got \`${match[2] ?? ''}\``,
    );
  }
  const result = Math.round(value * factor);
  if (!Number.isSafeInteger(result) || result <= 0) {
    throw new TypeError(`Expected a positive value for ${label}, got \`${text}\``);
  }
  return result;
}

/** CLI names (`memory`, `timeout`, …) of each limit. */
export const LIMIT_FLAGS: Record<string, LimitName> = {
  timeout: 'timeoutMs',
  cpu: 'cpuMs',
  memory: 'memoryBytes',
  pids: 'pids',
  'open-files': 'openFiles',
  'file-size': 'fileSizeBytes',
  scratch: 'scratchBytes',
  output: 'outputBytes',
};

/** The CLI's name of limit `name`: `memory` for `memoryBytes`. */
export function limitFlagOf(name: LimitName): string {
  return Object.keys(LIMIT_FLAGS).find((flag) => LIMIT_FLAGS[flag] === name) ?? name;
}
