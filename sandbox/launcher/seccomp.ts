/**
 * A seccomp filter every sandbox gets (bwrap `--seccomp FD`): the kernel key management calls,
 * `add_key`, `request_key` and `keyctl`, fail with EPERM; every other call is allowed. Docker's
 * default profile refuses the same three, for the same reason: bwrap gives a sandbox no session
 * keyring of its own, so a task inherits the node's. Under systemd (a service gets a private
 * session keyring) or in a container, that keyring is shared by every task the node runs and
 * outlives each of them: a task could leave keys there for the next one to read, and fill the
 * key quota of its host user, which sandboxes that share one share. Few programs use keys (a
 * Kerberos `KEYRING:` credential cache is one); in a sandbox they get EPERM, as under Docker.
 *
 * The program is classic BPF, built here rather than by libseccomp (a native dependency for a
 * program of sixteen instructions). It checks the architecture first, as a filter must: the same number means
 * another call under the 32-bit ABI, so each ABI the kernel runs has its own numbers, and an
 * architecture it does not know is refused outright. x32 calls (the x86_64 ABI with bit 30 set)
 * are refused as a whole. On a CPU without a program here, sandboxes start without the filter
 * (`seccompProgram` answers `undefined`) and the node logs it.
 */
import { closeSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';

/** fd 6 is bwrap's `--args` pipe for a command's secrets (`secret-args.ts`); 7 follows. */
export const SECCOMP_FD = 7;

// <linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const RET_K = 0x06;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const EPERM = 1;
const OFFSET_NR = 0;
const OFFSET_ARCH = 4;
const X32_SYSCALL_BIT = 0x40000000;

interface Abi {
  /** `AUDIT_ARCH_*` of the ABI. */
  arch: number;
  /** add_key, request_key and keyctl under it. */
  refused: readonly number[];
  /** Call numbers from here up are refused (x32). */
  refusedFrom?: number;
}

/** The ABIs a 64-bit kernel runs for each CPU Node reports, native first. */
const ABIS: Readonly<Record<string, readonly Abi[]>> = {
  x64: [
    { arch: 0xc000003e, refused: [248, 249, 250], refusedFrom: X32_SYSCALL_BIT },
    { arch: 0x40000003, refused: [286, 287, 288] }, // i386
  ],
  arm64: [
    { arch: 0xc00000b7, refused: [217, 218, 219] },
    { arch: 0x40000028, refused: [309, 310, 311] }, // 32-bit ARM (EABI)
  ],
};

interface Instruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

const statement = (code: number, k: number): Instruction => ({ code, jt: 0, jf: 0, k });

/**
 * The filter for `cpu` (`process.arch`), as the `struct sock_filter` array bwrap reads; `undefined`
 * for a CPU without one here.
 */
export function seccompProgram(cpu: string = process.arch): Buffer | undefined {
  const abis = ABIS[cpu];
  if (abis === undefined) {
    return undefined;
  }
  // Laid out as: one block per ABI, then `deny`. A block loads the arch (each block does, so a
  // jump into it needs nothing set up), goes to the next block when it is not this ABI, else
  // loads the call number and jumps to `deny` on a refused one; it ends allowing the call.
  const blocks = abis.map((abi) => abiBlock(abi));
  const program: Instruction[] = [];
  let remaining = blocks.reduce((sum, block) => sum + block.length, 0);
  for (const block of blocks) {
    remaining -= block.length;
    program.push(...block.map((instruction, index) => resolve(instruction, index, block.length, remaining)));
  }
  program.push(statement(RET_K, SECCOMP_RET_ERRNO | EPERM));
  return encode(program);
}

/** Jump targets as markers, resolved by {@link resolve}: `NEXT_BLOCK`, `DENY`, or 0 (the next instruction). */
const NEXT_BLOCK = -1;
const DENY = -2;

function abiBlock(abi: Abi): Instruction[] {
  const checks = abi.refused.map((nr) => ({ code: JEQ_K, jt: DENY, jf: 0, k: nr }));
  return [
    statement(LD_W_ABS, OFFSET_ARCH),
    { code: JEQ_K, jt: 0, jf: NEXT_BLOCK, k: abi.arch },
    statement(LD_W_ABS, OFFSET_NR),
    ...(abi.refusedFrom === undefined ? [] : [{ code: JGE_K, jt: DENY, jf: 0, k: abi.refusedFrom }]),
    ...checks,
    statement(RET_K, SECCOMP_RET_ALLOW),
  ];
}

/**
 * A jump's offsets counted from the instruction after it. `after` is how many instructions of
 * other blocks follow this block before `deny`: the next block starts right after this one,
 * `deny` after all of them (past the last block, a failed arch check lands on `deny` too).
 */
function resolve(instruction: Instruction, index: number, length: number, after: number): Instruction {
  const toEnd = length - index - 1;
  const target = (offset: number): number => (offset === NEXT_BLOCK ? toEnd : offset === DENY ? toEnd + after : offset);
  return { ...instruction, jt: target(instruction.jt), jf: target(instruction.jf) };
}

function encode(program: readonly Instruction[]): Buffer {
  const bytes = Buffer.alloc(program.length * 8);
  program.forEach(({ code, jt, jf, k }, i) => {
    // struct sock_filter { __u16 code; __u8 jt; __u8 jf; __u32 k; }, in the CPU's byte order
    // (little-endian on both CPUs above).
    bytes.writeUInt16LE(code, i * 8);
    bytes.writeUInt8(jt, i * 8 + 2);
    bytes.writeUInt8(jf, i * 8 + 3);
    bytes.writeUInt32LE(k >>> 0, i * 8 + 4);
  });
  return bytes;
}

/** The bwrap flags that install the filter read from `fd`. */
export function seccompFlags(fd: number = SECCOMP_FD): string[] {
  return ['--seccomp', String(fd)];
}

/** This CPU's filter; `undefined` when it has none (sandboxes then start without one). */
export const SECCOMP_PROGRAM: Buffer | undefined = seccompProgram();
/** Whether sandboxes get the filter: this CPU has one. */
export const WITH_SECCOMP = SECCOMP_PROGRAM !== undefined;

let held: number | undefined;

/**
 * A descriptor of the filter at offset 0, for one spawn. bwrap reads its fd to the end, and
 * descriptors dup'ed into children share their offset, so each spawn needs a description of its
 * own: the program is written once into a file that is unlinked at once (nothing left behind,
 * whatever ends the node), and reopened through `/proc/self/fd`, which gives a new description
 * of the same file each time.
 */
function openSeccompFilter(): number {
  if (held === undefined) {
    const file = join(tmpdir(), `tydra-seccomp-${randomUUID()}`);
    writeFileSync(file, SECCOMP_PROGRAM ?? Buffer.alloc(0), { mode: 0o600, flag: 'wx' });
    try {
      held = openSync(file, 'r');
    } finally {
      unlinkSync(file);
    }
  }
  return openSync(`/proc/self/fd/${held}`, 'r');
}

/**
 * Calls `spawn` with `stdio` plus a descriptor of the filter at `SECCOMP_FD`, for bwrap's
 * `--seccomp`, and closes the descriptor once `spawn` returned: a child spawned by then (execa
 * and Node spawn before they return) holds its own copy.
 */
export function spawnWithSeccomp<T, R>(stdio: readonly [T, T, T, ...T[]], spawn: (stdio: StdioWithFd<T>) => R): R {
  const fd = openSeccompFilter();
  try {
    return spawn(withSeccompStdio(stdio, fd));
  } finally {
    closeSync(fd);
  }
}

/** A `stdio` array: stdin, stdout, stderr, then extra fds; any entry may be a descriptor. */
type StdioWithFd<T> = [T | number, T | number, T | number, ...Array<T | 'ignore' | number>];

/** `stdio` with the filter's descriptor at `SECCOMP_FD`; fds in between not there yet stay closed. */
export function withSeccompStdio<T>(stdio: readonly [T, T, T, ...T[]], fd: number): StdioWithFd<T> {
  const result: StdioWithFd<T> = [...stdio];
  while (result.length <= SECCOMP_FD) {
    result.push('ignore');
  }
  result[SECCOMP_FD] = fd;
  return result;
}
