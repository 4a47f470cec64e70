import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  BackendCandidate,
  defaultCandidates,
  formatBackendReport,
  initBackend,
  nativeModuleCandidate,
} from '../../lib/backend';
import { classifyLoadError } from '../../lib/backend/native-probe';

const cpu = (): BackendCandidate => defaultCandidates().find((c) => c.name === 'cpu')!;

function fake(name: string, behaviour: 'unavailable' | 'check-throws' | 'activate-throws'): BackendCandidate {
  return {
    name,
    async check() {
      if (behaviour === 'check-throws') throw new Error('driver exploded');
      return behaviour === 'unavailable' ? { ok: false, reason: 'no such hardware' } : { ok: true, reason: '' };
    },
    async activate() {
      throw new Error('binding refused to start');
    },
  };
}

/** A module file in a temp dir whose loading does `body`. */
function tempModule(body: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-native-'));
  const file = path.join(dir, 'index.js');
  fs.writeFileSync(file, body);
  return file;
}

test('falls through unavailable, throwing and failing backends to the first that runs, with a reason for each', async () => {
  const report = await initBackend({
    env: {},
    candidates: [fake('gpu-ish', 'unavailable'), fake('flaky', 'check-throws'), fake('broken', 'activate-throws'), cpu()],
  });
  assert.equal(report.name, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(
    report.attempts.map((a) => [a.name, a.status]),
    [['gpu-ish', 'skipped'], ['flaky', 'skipped'], ['broken', 'failed'], ['cpu', 'chosen']],
  );
  assert.match(report.attempts[0].reason, /no such hardware/);
  assert.match(report.attempts[1].reason, /check failed: driver exploded/);
  assert.match(report.attempts[2].reason, /failed to activate: binding refused to start/);
  const text = formatBackendReport(report);
  for (const name of ['gpu-ish', 'flaky', 'broken', 'cpu']) assert.match(text, new RegExp(name));
});

test('a native backend that throws while loading is skipped with its error, and the process survives', async () => {
  const file = tempModule("throw new Error('libtensorflow.so.2: cannot open shared object file');");
  const report = await initBackend({ env: {}, candidates: [nativeModuleCandidate('fake-native', file, { requireGpu: false }), cpu()] });
  assert.equal(report.name, 'cpu');
  assert.equal(report.attempts[0].status, 'skipped');
  assert.match(report.attempts[0].reason, /libtensorflow could not be loaded/);
});

test('a native backend that aborts the process while loading is reported as a crash, not propagated', async () => {
  const file = tempModule('process.abort();');
  const report = await initBackend({ env: {}, candidates: [nativeModuleCandidate('fake-native', file, { requireGpu: false }), cpu()] });
  assert.equal(report.name, 'cpu');
  assert.match(report.attempts[0].reason, /crashed while loading \(SIGABRT\)/);
});

test('a native backend that is not installed is reported as such', async () => {
  const report = await initBackend({
    env: {},
    candidates: [nativeModuleCandidate('absent', '@mixmask/definitely-not-installed', { requireGpu: true }), cpu()],
  });
  assert.deepEqual(report.attempts[0], { name: 'absent', status: 'skipped', reason: 'not installed' });
});

test('GPU and CUDA load errors are classified for the report', () => {
  assert.match(
    classifyLoadError("libcudart.so.11.0: cannot open shared object file: No such file or directory"),
    /^CUDA libraries not found \(libcudart\.so\.11\.0\); tfjs-node-gpu needs CUDA 11\.2 and cuDNN 8\.1$/,
  );
  assert.match(
    classifyLoadError("Cannot find module '/x/node_modules/@tensorflow/tfjs-node/lib/napi-v8/tfjs_binding.node'"),
    /native binding/,
  );
});

test('MIXMASK_BACKEND forces a backend, and the force option overrides it', async () => {
  const byEnv = await initBackend({ env: { MIXMASK_BACKEND: 'cpu' } });
  assert.equal(byEnv.name, 'cpu');
  assert.equal(byEnv.forcedBy, 'env');
  assert.ok(byEnv.attempts.filter((a) => a.name !== 'cpu').every((a) => a.status === 'skipped' && /not forced/.test(a.reason)));
  assert.match(formatBackendReport(byEnv), /forced by MIXMASK_BACKEND/);

  const byOption = await initBackend({ force: 'wasm', env: { MIXMASK_BACKEND: 'cpu' } });
  assert.equal(byOption.name, 'wasm');
  assert.equal(byOption.forcedBy, 'option');
  assert.equal(tf.getBackend(), 'wasm');
});

test('forcing an unknown or unavailable backend is a clear error', async () => {
  await assert.rejects(initBackend({ env: { MIXMASK_BACKEND: 'cuda' } }), /MIXMASK_BACKEND is 'cuda', expected one of: tfjs-node-gpu, webgpu, tfjs-node, wasm\+onednn, wasm, cpu/);
  await assert.rejects(
    initBackend({ force: 'gpu-ish', env: {}, candidates: [fake('gpu-ish', 'unavailable'), cpu()] }),
    /backend 'gpu-ish' was forced but cannot run: gpu-ish: no such hardware/,
  );
  await assert.rejects(initBackend({ env: { MIXMASK_THREADS: 'two' } }), /MIXMASK_THREADS is 'two', expected a positive integer/);
});

test('the default chain is tried in the documented order and picks the best available backend', async () => {
  const report = await initBackend({ env: {} });
  assert.deepEqual(report.attempts.map((a) => a.name), ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm+onednn', 'wasm', 'cpu']);
  const chosenIndex = report.attempts.findIndex((a) => a.status === 'chosen');
  assert.ok(chosenIndex >= 0);
  // Everything before the chosen one says why it was passed over.
  for (const a of report.attempts.slice(0, chosenIndex)) assert.ok(a.reason.length > 0, `${a.name} has no reason`);
  assert.equal(report.tfBackend, tf.getBackend());
  assert.ok(report.threads >= 1);
});
