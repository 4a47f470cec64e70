import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * One writer per run folder. A trainer holds `<runDir>/run.lock` while it writes the folder; a
 * second trainer — in another terminal, or a re-run notebook cell while the first one still
 * runs in the same kernel — gets an error naming the holder instead of interleaving its log
 * with the first one's.
 *
 * The lock file is created with O_EXCL and holds { pid, host, started, token }. A lock whose
 * process is gone (same host, pid not alive: a killed run) is stale and taken over: it is first
 * renamed to a unique name (only one contender can rename it), checked to be the stale lock that
 * was read, then removed, and the exclusive create is retried. A lock from another host cannot be
 * checked and is never taken over: the error says which file to delete.
 */
export const LOCK_FILE = 'run.lock';

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the holder took the lock. */
  started: string;
  token: string;
}

export class RunLockedError extends Error {}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readHolder(file: string): LockHolder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' && typeof h.token === 'string' ? h : null;
  } catch {
    return null; // gone, or torn by a crash between create and write
  }
}

function describe(h: LockHolder): string {
  const who = h.pid === process.pid && h.host === os.hostname() ? 'this process (a run started earlier here, e.g. by another notebook cell, is still going)' : `process ${h.pid} on ${h.host}`;
  return `${who}, since ${h.started}`;
}

export class RunLock {
  private released = false;

  private constructor(
    readonly file: string,
    readonly holder: LockHolder,
  ) {}

  /** Takes the lock of `runDir` (created if missing) or throws RunLockedError naming the holder. */
  static acquire(runDir: string): RunLock {
    fs.mkdirSync(runDir, { recursive: true });
    const file = path.join(runDir, LOCK_FILE);
    const me: LockHolder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), token: crypto.randomUUID() };
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const fd = fs.openSync(file, 'wx');
        try {
          fs.writeSync(fd, JSON.stringify(me) + '\n');
        } finally {
          fs.closeSync(fd);
        }
        return new RunLock(file, me);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const held = readHolder(file);
      if (held === null) {
        // Unreadable: either being written right now or torn by a crash. Give a writer a moment.
        const age = Date.now() - safeMtime(file);
        if (age < 2000) {
          sleepMs(50);
          continue;
        }
      } else if (held.host !== os.hostname() || alive(held.pid)) {
        throw new RunLockedError(
          `${runDir} is being written by ${describe(held)} (${file}); wait for that run to stop, ` +
            (held.host === os.hostname() ? 'or stop it' : `or delete ${file} if that process is gone`),
        );
      }
      takeOverStale(file, held);
    }
    throw new RunLockedError(`${runDir}: could not take ${file} after 5 attempts (another process keeps replacing it)`);
  }

  /** Releases the lock if this process still holds it; idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    const held = readHolder(this.file);
    if (held?.token === this.holder.token) fs.rmSync(this.file, { force: true });
  }
}

function safeMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Removes a stale lock, unless another process replaced it in the meantime (then it is put back). */
function takeOverStale(file: string, stale: LockHolder | null): void {
  const aside = `${file}.stale-${process.pid}-${crypto.randomUUID()}`;
  try {
    fs.renameSync(file, aside);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else removed it: retry the create
    throw e;
  }
  const moved = readHolder(aside);
  if (moved !== null && stale !== null && moved.token !== stale.token) {
    // A live lock taken in between: give it back (link fails if yet another one exists, which then wins).
    try {
      fs.linkSync(aside, file);
    } catch {
      /* the newer lock stays */
    }
  }
  fs.rmSync(aside, { force: true });
}
