import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { defaultCandidates, initBackend } from '../../lib/backend';
import { classifyDawnFailure, defaultDawnNodePath, describeAdapter, summariseAdapter, webgpuCandidate } from '../../lib/backend/webgpu';

/**
 * How the webgpu candidate fails and reports: every way Dawn cannot start is a reason in the
 * report and the chain goes on; a software adapter is skipped unless webgpu is forced.
 */

const cpu = () => defaultCandidates().find((c) => c.name === 'cpu')!;

function tempScript(body: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-dawn-'));
  const file = path.join(dir, 'fake-dawn.js');
  fs.writeFileSync(file, body);
  return file;
}

test('a Dawn binding that aborts while starting is reported as a crash, and the chain goes on', async () => {
  const report = await initBackend({ env: {}, candidates: [webgpuCandidate({ dawnNodePath: tempScript('process.abort();') }), cpu()] });
  assert.equal(report.name, 'cpu');
  assert.deepEqual(report.attempts[0], { name: 'webgpu', status: 'skipped', reason: 'Dawn crashed while starting (SIGABRT)' });
});

test('a missing Dawn binding and a throwing one are reasons, not errors', async () => {
  const missing = path.join(os.tmpdir(), 'no-such-dir', 'dawn.node');
  const r1 = await initBackend({ env: {}, candidates: [webgpuCandidate({ dawnNodePath: missing }), cpu()] });
  assert.match(r1.attempts[0].reason, /^no Dawn binding for linux-x64|^no Dawn binding for /);
  const throwing = tempScript("throw new Error('/lib/x86_64-linux-gnu/libstdc++.so.6: version `GLIBCXX_3.4.30\\' not found');");
  const r2 = await initBackend({ env: {}, candidates: [webgpuCandidate({ dawnNodePath: throwing }), cpu()] });
  assert.equal(r2.attempts[0].status, 'skipped');
  assert.match(r2.attempts[0].reason, /dawn\.node cannot load: the system C\+\+ runtime is too old \(GLIBCXX_3\.4\.30 not found\)/);
});

test('Dawn without a Vulkan loader or without a driver: reasons that say what to install', () => {
  // What Dawn prints (measured with libvulkan1 removed, and with VK_DRIVER_FILES at no file).
  assert.equal(
    classifyDawnFailure('no-adapter', "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory\n    at operator() (BackendVk.cpp:368)"),
    'no Vulkan loader (libvulkan.so.1 not found; on Debian/Ubuntu: apt-get install libvulkan1)',
  );
  assert.match(
    classifyDawnFailure('no-adapter', 'Warning: vkCreateInstance: Found no drivers!\nWarning: vkCreateInstance failed with VK_ERROR_INCOMPATIBLE_DRIVER'),
    /^no Vulkan driver/,
  );
  assert.match(classifyDawnFailure('no-adapter', ''), /^Dawn found no WebGPU adapter$/);
});

test('adapters: software ones are recognised and named; the default binding path is the platform one', () => {
  const lavapipe = summariseAdapter({ vendor: 'mesa', architecture: 'software', device: 'llvmpipe-llvm-15', description: 'llvmpipe: Mesa 25.0.7', isFallbackAdapter: true });
  assert.equal(lavapipe.software, true);
  assert.equal(describeAdapter(lavapipe), 'llvmpipe: Mesa 25.0.7 — vendor mesa, software adapter');
  const h100 = summariseAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H100 80GB HBM3' });
  assert.equal(h100.software, false);
  assert.equal(describeAdapter(h100), 'NVIDIA H100 80GB HBM3 — vendor nvidia, hopper, hardware');
  assert.equal(summariseAdapter({ description: 'SwiftShader Device (Subzero)' }).software, true);
  assert.equal(defaultDawnNodePath({ MIXMASK_DAWN_NODE: '/x/dawn.node' }), '/x/dawn.node');
  const p = defaultDawnNodePath({});
  if (p !== null) assert.match(p, new RegExp(`dist[/\\\\]${process.platform}-(${process.arch}|universal)[/\\\\]dawn\\.node$`));
});

test('with no Vulkan driver the real Dawn is skipped with its reason (when the webgpu package is installed)', async (t) => {
  const dawn = defaultDawnNodePath({});
  if (dawn === null || !fs.existsSync(dawn)) return t.skip('the optional package webgpu is not installed');
  const env = { ...process.env, VK_DRIVER_FILES: path.join(os.tmpdir(), 'no-such-icd.json'), VK_ICD_FILENAMES: '' };
  const report = await initBackend({ env: {}, candidates: [webgpuCandidate({ env }), cpu()] });
  assert.equal(report.attempts[0].status, 'skipped');
  assert.match(report.attempts[0].reason, /^no Vulkan (driver|loader)|^Dawn found no WebGPU adapter/);
});

test('a software adapter is skipped unless webgpu is forced, and chosen when it is', async (t) => {
  const probe = webgpuCandidate();
  const unforced = await probe.check({ forced: false });
  if (!/software adapter/.test(unforced.reason)) {
    if (process.env.CI === 'true') assert.fail(`CI installs lavapipe, yet: ${unforced.reason}`);
    return t.skip(`no software adapter here: ${unforced.reason}`);
  }
  assert.equal(unforced.ok, false);
  assert.match(unforced.reason, /^only a software adapter \(.+\): slower than the CPU backends; used only when forced \(MIXMASK_BACKEND=webgpu\)$/);
  const forced = await webgpuCandidate().check({ forced: true });
  assert.equal(forced.ok, true);
  assert.match(forced.reason, /software adapter$/);
});
