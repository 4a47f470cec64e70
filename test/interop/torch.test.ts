/**
 * Round trips with real PyTorch (Debian's python3-torch + python3-torchvision at /usr/bin/python3):
 * tfjs export → torchvision load_state_dict(strict=True) → same features, and torchvision /
 * MoCo-style checkpoints (.safetensors and .pth.tar) → tfjs import → same features.
 * Skipped only when torch is missing outside CI; in CI (process.env.CI set) it must run.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, writeSafetensorsFile } from '../../lib/io/safetensors';
import { exportResNetToTorch, importTorchBackbone, importTorchBackboneWithReport, importTorchToCheckpoint } from '../../lib/interop';
import { MlpHead } from '../../lib/models/heads';
import { ResNet } from '../../lib/models/resnet';
import { loadBackbone, saveCheckpoint } from '../../lib/train/checkpoint';
import { relError, useBackend } from '../helpers';
import { randomImages, randomizeBatchNorm } from './common';

const PYTHON = '/usr/bin/python3';
const ROOT = path.resolve(__dirname, '..', '..', '..'); // dist/test/interop → project root
const HELPER = path.join(ROOT, 'test', 'interop', 'torch_helper.py');
const PY_HELPER = path.join(ROOT, 'lib', 'interop', 'python', 'mixmask_torch.py');
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { stdio: 'ignore', timeout: 120_000 }).status === 0;
const skip = !hasTorch && !process.env.CI ? `needs ${PYTHON} with torch and torchvision (apt-get install python3-torch python3-torchvision)` : false;
const TOLERANCE = 1e-4;

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-'));
const tmp = (name: string) => path.join(dir, name);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

before(async () => {
  await useBackend('cpu'); // the exact reference backend: agreement then measures the conversion only
});

function python(args: string[]): void {
  const r = spawnSync(PYTHON, [HELPER, ...args], { encoding: 'utf8', timeout: 10 * 60_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(r.status, 0, `${PYTHON} ${path.basename(HELPER)} ${args[0]} failed:\n${r.stderr || r.error}`);
}

function node(script: string, args: string[]): string {
  const r = spawnSync(process.execPath, [path.join(ROOT, 'dist', 'scripts', script), ...args], { encoding: 'utf8', timeout: 10 * 60_000 });
  assert.equal(r.status, 0, `${script} failed:\n${r.stderr}`);
  return r.stdout;
}

function writeInput(x: tf.Tensor4D, file: string): void {
  writeSafetensorsFile(file, new Map([['x', { dtype: 'F32', shape: x.shape, data: x.dataSync() as Float32Array }]]));
}

function readOutput(file: string, key: string): Float32Array {
  const t = readSafetensorsFile(file).tensors.get(key);
  if (!t) throw new Error(`${file}: no "${key}"`);
  return t.data as Float32Array;
}

function features(net: ResNet, x: tf.Tensor4D): Float32Array {
  return tf.tidy(() => net.apply(x, false).dataSync() as Float32Array);
}

function agree(t: { diagnostic(msg: string): void }, what: string, ours: Float32Array, torch: Float32Array): void {
  const e = relError(ours, torch);
  t.diagnostic(`${what}: relative error ${e.toExponential(2)}`);
  assert.ok(e < TOLERANCE, `${what}: relative error ${e} ≥ ${TOLERANCE}`);
}

test('tfjs → PyTorch: ResNet-18 CIFAR stem, width 64, 32×32 — same features', { skip }, async (t) => {
  const net = new ResNet({ depth: 18, stem: 'cifar', width: 64, seed: 1 });
  randomizeBatchNorm(net, 1);
  const x = randomImages(2, 32, 1);
  try {
    await exportResNetToTorch(net, tmp('r18.safetensors'));
    writeInput(x, tmp('x18.safetensors'));
    python(['features', tmp('r18.safetensors'), tmp('x18.safetensors'), tmp('f18.safetensors')]);
    agree(t, 'export resnet18-cifar w64 features', features(net, x), readOutput(tmp('f18.safetensors'), 'features'));
    // The documented route towards MoCo / Detectron2 tools: a MoCo-style .pth.tar, which imports back unchanged.
    const r = spawnSync(PYTHON, [PY_HELPER, 'to-moco', tmp('r18.safetensors'), tmp('r18-moco.pth.tar')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const back = importTorchBackboneWithReport(tmp('r18-moco.pth.tar'), { python: PYTHON });
    try {
      assert.equal(back.report.prefix, 'module.encoder_q.');
      assert.deepEqual(Array.from(features(back.net, x)), Array.from(features(net, x)));
    } finally {
      back.net.dispose();
    }
  } finally {
    net.dispose();
    x.dispose();
  }
});

test('tfjs → PyTorch: ResNet-50 ImageNet stem, width 64, 64×64, with heads, through npm run export', { skip }, async (t) => {
  const net = new ResNet({ depth: 50, stem: 'imagenet', width: 64, seed: 2 });
  // SimSiam-shaped heads: BatchNorm in the hidden layers, an affine-free BatchNorm on the output.
  const projector = new MlpHead(2048, [256], 128, { outputBn: 'no-affine', seed: 3 });
  const predictor = new MlpHead(128, [64], 128, { seed: 4 });
  for (const [m, s] of [[net, 2], [projector, 3], [predictor, 4]] as const) randomizeBatchNorm(m, s);
  const x = randomImages(2, 64, 2);
  try {
    const ckpt = tmp('r50-checkpoint.safetensors');
    await saveCheckpoint(
      ckpt,
      [
        ...net.namedState().map(([n, v]) => [`backbone.${n}`, v] as [string, tf.Tensor]),
        ...projector.namedState().map(([n, v]) => [`projector.${n}`, v] as [string, tf.Tensor]),
        ...predictor.namedState().map(([n, v]) => [`predictor.${n}`, v] as [string, tf.Tensor]),
      ],
      { backbone: net.config, epoch: 1, step: 10 },
    );
    const out = node('export-weights.js', ['--checkpoint', ckpt, '--out', tmp('r50.safetensors'), '--heads']);
    assert.match(out, /ResNet-50 \(imagenet stem, width 64\), heads projector, predictor/);
    writeInput(x, tmp('x50.safetensors'));
    python(['features', tmp('r50.safetensors'), tmp('x50.safetensors'), tmp('f50.safetensors'), '--heads']);
    const f = features(net, x);
    agree(t, 'export resnet50-imagenet w64 features', f, readOutput(tmp('f50.safetensors'), 'features'));
    const [z, p] = tf.tidy(() => {
      const zt = projector.apply(tf.tensor2d(f, [2, 2048]), false);
      return [zt.dataSync() as Float32Array, predictor.apply(zt, false).dataSync() as Float32Array];
    });
    agree(t, 'export projector head', z, readOutput(tmp('f50.safetensors'), 'head.projector'));
    agree(t, 'export predictor head', p, readOutput(tmp('f50.safetensors'), 'head.predictor'));
  } finally {
    for (const m of [net, projector, predictor]) m.dispose();
    x.dispose();
  }
});

test('PyTorch → tfjs: MoCo-style ResNet-50 (width 16) from .safetensors, .pth.tar and npm run import', { skip }, (t) => {
  const x = randomImages(2, 64, 3);
  writeInput(x, tmp('xm.safetensors'));
  python(['make', JSON.stringify({
    depth: 50, stem: 'imagenet', width: 16, seed: 5, moco: true, input: tmp('xm.safetensors'), features: tmp('fm.safetensors'),
    safetensors: tmp('moco.safetensors'), pth: tmp('checkpoint_0199.pth.tar'),
  })]);
  const want = readOutput(tmp('fm.safetensors'), 'features');
  try {
    const { net, report } = importTorchBackboneWithReport(tmp('moco.safetensors'), { depth: 50, stem: 'imagenet' });
    try {
      assert.equal(report.prefix, 'module.encoder_q.');
      assert.deepEqual(report.config, { depth: 50, stem: 'imagenet', width: 16, seed: 0 });
      assert.deepEqual(report.skippedHead, ['module.encoder_q.fc.0.weight', 'module.encoder_q.fc.0.bias', 'module.encoder_q.fc.2.weight', 'module.encoder_q.fc.2.bias']);
      agree(t, 'import moco resnet50 w16 (.safetensors) features', features(net, x), want);
    } finally {
      net.dispose();
    }
    const fromPth = importTorchBackbone(tmp('checkpoint_0199.pth.tar'), { python: PYTHON });
    try {
      agree(t, 'import moco resnet50 w16 (.pth.tar) features', features(fromPth, x), want);
    } finally {
      fromPth.dispose();
    }
    const out = node('import-weights.js', ['--in', tmp('checkpoint_0199.pth.tar'), '--arch', 'resnet50', '--stem', 'imagenet', '--out', tmp('ours.safetensors')]);
    assert.match(out, /ResNet-50 \(imagenet stem, width 16\) from "module\.encoder_q\.", 318 tensors/);
    assert.match(out, /skipped the head: 4 tensors/);
    const loaded = loadBackbone(tmp('ours.safetensors'));
    try {
      agree(t, 'npm run import moco .pth.tar → loadBackbone features', features(loaded, x), want);
    } finally {
      loaded.dispose();
    }
  } finally {
    x.dispose();
  }
});

test('PyTorch → tfjs: torchvision ResNet-18 CIFAR (width 64) into our checkpoint; a missing tensor in a .pth is named', { skip }, async (t) => {
  const x = randomImages(2, 32, 4);
  writeInput(x, tmp('x18i.safetensors'));
  python(['make', JSON.stringify({
    depth: 18, stem: 'cifar', width: 64, seed: 6, input: tmp('x18i.safetensors'), features: tmp('f18i.safetensors'),
    safetensors: tmp('tv18.safetensors'),
  })]);
  try {
    const report = await importTorchToCheckpoint(tmp('tv18.safetensors'), tmp('ours18.safetensors'), { normalize: 'cifar100' });
    assert.equal(report.prefix, '');
    const net = loadBackbone(tmp('ours18.safetensors'));
    try {
      agree(t, 'import torchvision resnet18-cifar w64 features', features(net, x), readOutput(tmp('f18i.safetensors'), 'features'));
    } finally {
      net.dispose();
    }
    python(['make', JSON.stringify({
      depth: 18, stem: 'cifar', width: 8, seed: 7, moco: true, input: tmp('x18i.safetensors'), features: tmp('f-drop.safetensors'),
      pth: tmp('broken.pth.tar'), drop: 'module.encoder_q.layer2.1.bn1.running_var',
    })]);
    assert.throws(
      () => importTorchBackbone(tmp('broken.pth.tar'), { python: PYTHON }),
      /broken\.pth\.tar: missing tensor "module\.encoder_q\.layer2\.1\.bn1\.running_var" \(expected shape \[16\]/,
    );
  } finally {
    x.dispose();
  }
});

test('the hand-off: a tfjs checkpoint, fine-tuned in PyTorch, comes back through a MoCo-style .pth.tar and is evaluated here', { skip }, async (t) => {
  // 1. A pretrained checkpoint of ours (weights as training leaves them).
  const net = new ResNet({ depth: 18, stem: 'cifar', width: 8, seed: 3 });
  randomizeBatchNorm(net, 9);
  await saveCheckpoint(tmp('pre.safetensors'), net.namedState().map(([n, v]) => [`backbone.${n}`, v] as [string, tf.Tensor]), {
    backbone: net.config, epoch: 1, step: 1,
  });
  const x0 = randomImages(2, 32, 8);
  const before = features(net, x0);
  x0.dispose();
  net.dispose();
  // 2. Export, fine-tune in PyTorch, write the MoCo-style file the official scripts use.
  node('export-weights.js', ['--checkpoint', tmp('pre.safetensors'), '--out', tmp('exported.safetensors')]);
  const x = randomImages(2, 32, 8);
  writeInput(x, tmp('xh.safetensors'));
  const ft = spawnSync(PYTHON, [path.join(ROOT, 'test', 'interop', 'finetune_in_torch.py'), JSON.stringify({
    exported: tmp('exported.safetensors'), finetuned: tmp('finetuned.safetensors'), input: tmp('xh.safetensors'), features: tmp('fh.safetensors'), size: 32,
  })], { encoding: 'utf8', timeout: 10 * 60_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(ft.status, 0, ft.stderr);
  const moco = spawnSync(PYTHON, [PY_HELPER, 'to-moco', tmp('finetuned.safetensors'), tmp('finetuned.pth.tar')], { encoding: 'utf8' });
  assert.equal(moco.status, 0, moco.stderr);
  // 3. Back into our format; the features are PyTorch's, and fine-tuning really changed them.
  node('import-weights.js', ['--in', tmp('finetuned.pth.tar'), '--out', tmp('back.safetensors')]);
  const back = loadBackbone(tmp('back.safetensors'));
  try {
    const ours = features(back, x);
    agree(t, 'fine-tuned in PyTorch → import → features', ours, readOutput(tmp('fh.safetensors'), 'features'));
    assert.ok(relError(ours, before) > 1e-3, 'the PyTorch fine-tune did not change the backbone');
  } finally {
    back.dispose();
    x.dispose();
  }
  // 4. Evaluated by the same command the notebooks' results come from.
  node('evaluate.js', ['--checkpoint', tmp('back.safetensors'), '--dataset', 'synthetic', '--protocol', 'knn', '--k', '20', '--out', tmp('eval.json'), '--quiet']);
  const result = JSON.parse(fs.readFileSync(tmp('eval.json'), 'utf8')) as { top1: number; checkpointMeta: { backbone: { width: number } } };
  assert.equal(result.checkpointMeta.backbone.width, 8);
  assert.ok(result.top1 >= 0 && result.top1 <= 100);
});
