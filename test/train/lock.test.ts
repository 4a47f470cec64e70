import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { syntheticDataset } from '../../lib/data';
import { trainOrLoad } from '../../lib/notebook';
import { pretrainConfig } from '../../lib/presets';
import { InterruptedError } from '../../lib/train/interrupt';
import { JsonlLog } from '../../lib/train/log';
import { LOCK_FILE, RunLock, RunLockedError } from '../../lib/train/lock';
import { ProgressSink, silentProgress } from '../../lib/train/progress';
import { Trainer } from '../../lib/train/trainer';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-lock-'));
const stepsOf = (dir: string) => JsonlLog.read(path.join(dir, 'log.jsonl')).filter((r) => r.type === 'step').map((r) => r.step as number);

test('a run folder has one writer: a second lock is refused with the holder named, and released locks can be taken', () => {
  const dir = tmp();
  const a = RunLock.acquire(dir);
  assert.throws(() => RunLock.acquire(dir), (e: Error) => e instanceof RunLockedError && /being written by this process/.test(e.message) && e.message.includes(LOCK_FILE));
  a.release();
  assert.ok(!fs.existsSync(path.join(dir, LOCK_FILE)));
  const b = RunLock.acquire(dir);
  a.release(); // a stale handle never removes someone else's lock
  assert.ok(fs.existsSync(path.join(dir, LOCK_FILE)));
  b.release();
});

test("a killed writer's lock is taken over; another host's is not", () => {
  const dir = tmp();
  const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
  const pid = Number(dead.stdout.trim());
  const file = path.join(dir, LOCK_FILE);
  fs.writeFileSync(file, JSON.stringify({ pid, host: os.hostname(), started: '2026-01-01T00:00:00Z', token: 'stale' }));
  const lock = RunLock.acquire(dir);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
  assert.deepEqual(fs.readdirSync(dir), [LOCK_FILE], 'the stale lock was removed, not left aside');
  lock.release();

  fs.writeFileSync(file, JSON.stringify({ pid, host: 'elsewhere', started: '2026-01-01T00:00:00Z', token: 'x' }));
  assert.throws(() => RunLock.acquire(dir), /process \d+ on elsewhere.*delete .*run\.lock/);
});

test('two trainers on one folder: the second is refused and the first one\'s log stays in order', async () => {
  const dir = tmp();
  const cfg = pretrainConfig('byol', 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, epochs: 2 });
  const train = syntheticDataset({ size: 64, numClasses: 4, seed: 1 });
  const first = new Trainer({ config: cfg, runDir: dir, train, progress: silentProgress });
  const second = new Trainer({ config: cfg, runDir: dir, train, progress: silentProgress, resume: true });
  const running = first.run();
  await assert.rejects(second.run(), (e: Error) => e instanceof RunLockedError && /being written by this process/.test(e.message));
  const summary = await running;
  assert.equal(summary.status, 'completed');
  assert.deepEqual(stepsOf(dir), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.ok(!fs.existsSync(path.join(dir, LOCK_FILE)), 'the lock is released when the run ends');
  first.dispose();
  second.dispose();
});

test('an interrupt (SIGINT) during trainOrLoad stops at the step boundary with a checkpoint; the re-run resumes', async () => {
  const dir = path.join(tmp(), 'run');
  const cfg = pretrainConfig('simsiam', 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4, epochs: 1, trainSubset: 64 });
  // Stands in for the notebook kernel's own SIGINT handler (tslab abandons the cell's promise).
  let kernelHandlerCalls = 0;
  const kernelHandler = () => kernelHandlerCalls++;
  process.on('SIGINT', kernelHandler);
  try {
    let updates = 0;
    const interruptAtStep2: ProgressSink = {
      update() {
        if (++updates === 2) process.emit('SIGINT', 'SIGINT');
      },
      done() {},
    };
    await assert.rejects(trainOrLoad(cfg, { runDir: dir, progress: interruptAtStep2 }), (e: Error) => {
      assert.ok(e instanceof InterruptedError);
      assert.match(e.message, /simsiam \+ mixmask .* stopped at epoch 1 \(step 2\) with a checkpoint in .*; re-run the cell to resume/);
      assert.equal(e.stack, `InterruptedError: ${e.message}`);
      return true;
    });
    assert.equal(kernelHandlerCalls, 0, 'the kernel did not see the interrupt: the cell ended only when training had stopped');
    assert.ok(fs.existsSync(path.join(dir, 'checkpoint.safetensors')));
    assert.deepEqual(stepsOf(dir), [1, 2]);
    assert.ok(!fs.existsSync(path.join(dir, LOCK_FILE)));
    assert.deepEqual(process.listeners('SIGINT'), [kernelHandler], 'the kernel handler is back, ours is gone');

    const again = await trainOrLoad(cfg, { runDir: dir, progress: silentProgress });
    assert.equal(again.loaded, false);
    assert.deepEqual(stepsOf(dir), [1, 2, 3, 4]);
    process.emit('SIGINT', 'SIGINT');
    assert.equal(kernelHandlerCalls, 1);
  } finally {
    process.removeListener('SIGINT', kernelHandler);
  }
});
