/**
 * Interop without PyTorch: layouts, key and architecture detection, head naming, clear errors,
 * the export/import round trip within tfjs, the command lines, and the advice given when a
 * .pth cannot be read because no Python with torch exists.
 */
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readSafetensorsFile, SafeTensor, writeSafetensorsFile } from '../../lib/io/safetensors';
import {
  checkpointHeads, convertPthToSafetensors, detectBackbonePrefix, exportCheckpointToTorch, exportResNetToTorch, headToTorch,
  importTorchBackbone, importTorchBackboneWithReport, importTorchToCheckpoint, inferResNetConfig, permuteAxes,
  resnetToTorchState, safetensorsNameFor, TORCH_META, withSafetensors,
} from '../../lib/interop';
import { MlpHead } from '../../lib/models/heads';
import { Linear } from '../../lib/models/layers';
import { ResNet } from '../../lib/models/resnet';
import { Rng } from '../../lib/util/rng';
import { loadBackbone, loadCheckpoint, saveCheckpoint, tensorsToSafe } from '../../lib/train/checkpoint';
import { parseExportArgs } from '../../scripts/export-weights';
import { parseImportArgs } from '../../scripts/import-weights';
import { useBackend } from '../helpers';
import { randomImages, randomizeBatchNorm } from './common';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-interop-'));
const tmp = (name: string) => path.join(dir, name);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

before(async () => {
  await useBackend('cpu');
});

function features(net: ResNet, x: tf.Tensor4D): Float32Array {
  return tf.tidy(() => net.apply(x, false).dataSync() as Float32Array);
}

test('permuteAxes matches tf.transpose; HWIO ↔ OIHW round trip', () => {
  const shape = [3, 2, 4, 5];
  const data = new Rng(1).fillNormal(new Float32Array(120));
  for (const perm of [[3, 2, 0, 1], [2, 3, 1, 0], [0, 1, 2, 3], [1, 0, 3, 2]]) {
    const want = tf.tidy(() => tf.transpose(tf.tensor4d(data, shape as [number, number, number, number]), perm).dataSync());
    assert.deepEqual(Array.from(permuteAxes(data, shape, perm)), Array.from(want));
  }
  const back = permuteAxes(permuteAxes(data, shape, [3, 2, 0, 1]), [5, 4, 3, 2], [2, 3, 1, 0]);
  assert.deepEqual(Array.from(back), Array.from(data));
  assert.throws(() => permuteAxes(data, shape, [0, 0, 1, 2]), /not a permutation/);
});

test('torchvision state of our ResNet: names, OIHW layout, int64 counters', async () => {
  const net = new ResNet({ depth: 18, stem: 'cifar', width: 4, seed: 3 });
  try {
    const state = await resnetToTorchState(net);
    assert.deepEqual(state.get('conv1.weight')!.shape, [4, 3, 3, 3]);
    assert.deepEqual(state.get('layer2.0.downsample.0.weight')!.shape, [8, 4, 1, 1]);
    assert.equal(state.get('bn1.num_batches_tracked')!.dtype, 'I64');
    assert.deepEqual(state.get('bn1.num_batches_tracked')!.shape, []);
    assert.ok(![...state.keys()].some((k) => k.startsWith('fc')));
    // conv1.weight[o, i, kh, kw] (PyTorch) == ours[kh, kw, i, o]
    const ours = net.namedState().find(([n]) => n === 'conv1.weight')![1].dataSync();
    const theirs = state.get('conv1.weight')!.data as Float32Array;
    const [o, i, kh, kw] = [2, 1, 0, 2];
    assert.equal(theirs[((o * 3 + i) * 3 + kh) * 3 + kw], ours[((kh * 3 + kw) * 3 + i) * 4 + o]);
  } finally {
    net.dispose();
  }
});

test('prefix and architecture detection', async () => {
  const keys = (p: string) => [`${p}conv1.weight`, `${p}bn1.weight`, `${p}layer1.0.conv1.weight`];
  assert.equal(detectBackbonePrefix(keys(''), 'f'), '');
  assert.equal(detectBackbonePrefix(keys('module.'), 'f'), 'module.');
  assert.equal(detectBackbonePrefix([...keys('module.encoder_k.'), ...keys('module.encoder_q.'), 'module.queue'], 'f'), 'module.encoder_q.');
  assert.equal(detectBackbonePrefix([...keys('target.backbone.'), ...keys('backbone.')], 'f'), 'backbone.');
  assert.equal(detectBackbonePrefix([...keys('online.'), ...keys('momentum_encoder.')], 'f'), 'online.');
  assert.throws(() => detectBackbonePrefix([...keys('a.'), ...keys('b.')], 'f.safetensors'), /f\.safetensors: several backbones found \(prefixes "a\.", "b\."\)/);
  assert.throws(() => detectBackbonePrefix(['x.weight'], 'f.safetensors'), /f\.safetensors: no ResNet backbone found/);

  for (const config of [
    { depth: 18, stem: 'cifar', width: 8 },
    { depth: 34, stem: 'imagenet', width: 4 },
    { depth: 50, stem: 'imagenet', width: 4 },
  ] as const) {
    const net = new ResNet(config);
    try {
      const state = new Map([...(await resnetToTorchState(net))].map(([k, t]) => [`module.${k}`, t] as [string, SafeTensor]));
      assert.deepEqual(inferResNetConfig(state, 'module.', 'f'), config);
    } finally {
      net.dispose();
    }
  }
});

test('export → import within tfjs gives identical features, from plain and MoCo-style keys', async () => {
  const net = new ResNet({ depth: 18, stem: 'imagenet', width: 4, seed: 5 });
  randomizeBatchNorm(net, 5);
  const file = tmp('r18.safetensors');
  const moco = tmp('moco.safetensors');
  const x = randomImages(2, 32, 1);
  try {
    const r = await exportResNetToTorch(net, file);
    assert.deepEqual(r.arch, { depth: 18, stem: 'imagenet', width: 4 });
    const meta = readSafetensorsFile(file).metadata;
    assert.equal(meta.format, 'pt');
    assert.deepEqual(JSON.parse(meta[TORCH_META.arch]), r.arch);

    const back = importTorchBackbone(file);
    try {
      assert.deepEqual(Array.from(features(back, x)), Array.from(features(net, x)));
      const counter = back.namedState().find(([n]) => n === 'bn1.num_batches_tracked')![1];
      const original = net.namedState().find(([n]) => n === 'bn1.num_batches_tracked')![1];
      assert.equal(counter.dtype, 'int32');
      assert.equal(counter.dataSync()[0], original.dataSync()[0]);
    } finally {
      back.dispose();
    }

    // MoCo's layout: online encoder_q with the fc head, a momentum encoder_k, the queue.
    const torchState = await resnetToTorchState(net);
    const mocoState = new Map<string, SafeTensor>();
    for (const [k, t] of torchState) mocoState.set(`module.encoder_q.${k}`, t);
    for (const [k, t] of torchState) {
      const zeros = t.dtype === 'F32' ? { ...t, data: new Float32Array(t.data.length) } : t;
      mocoState.set(`module.encoder_k.${k}`, zeros);
    }
    mocoState.set('module.encoder_q.fc.0.weight', { dtype: 'F32', shape: [32, 32], data: new Float32Array(32 * 32) });
    mocoState.set('module.encoder_q.fc.0.bias', { dtype: 'F32', shape: [32], data: new Float32Array(32) });
    mocoState.set('module.queue', { dtype: 'F32', shape: [8, 4], data: new Float32Array(32) });
    writeSafetensorsFile(moco, mocoState);
    const { net: imported, report } = importTorchBackboneWithReport(moco, { depth: 18 });
    try {
      assert.equal(report.prefix, 'module.encoder_q.');
      assert.deepEqual(report.skippedHead, ['module.encoder_q.fc.0.weight', 'module.encoder_q.fc.0.bias']);
      assert.equal(report.ignoredOutsidePrefix, torchState.size + 1);
      assert.deepEqual(Array.from(features(imported, x)), Array.from(features(net, x)));
    } finally {
      imported.dispose();
    }
    assert.throws(() => importTorchBackbone(moco, { depth: 50 }), /ResNet-18 with imagenet stem and width 4, but depth 50 was asked for/);
  } finally {
    net.dispose();
    x.dispose();
  }
});

test('a missing or mis-shaped tensor is an error naming the file, the key and the expected shape', async () => {
  const net = new ResNet({ depth: 18, stem: 'cifar', width: 4 });
  const state = await resnetToTorchState(net);
  net.dispose();
  const before = tf.memory().numTensors;

  const missing = tmp('missing.safetensors');
  const m = new Map(state);
  m.delete('layer3.1.bn2.running_var');
  writeSafetensorsFile(missing, m);
  assert.throws(() => importTorchBackbone(missing), (e: Error) => {
    assert.match(e.message, /missing\.safetensors: missing tensor "layer3\.1\.bn2\.running_var" \(expected shape \[16\]/);
    return true;
  });

  const misshaped = tmp('misshaped.safetensors');
  const s = new Map(state);
  s.set('layer2.0.conv1.weight', { dtype: 'F32', shape: [8, 4, 1, 3], data: new Float32Array(96) });
  writeSafetensorsFile(misshaped, s);
  assert.throws(
    () => importTorchBackbone(misshaped),
    /misshaped\.safetensors: tensor "layer2\.0\.conv1\.weight" has shape \[8,4,1,3\], expected \[8,4,3,3\] \(PyTorch layout\)/,
  );

  const extra = tmp('extra.safetensors');
  const x = new Map(state);
  x.set('layer1.0.se.weight', { dtype: 'F32', shape: [2], data: new Float32Array(2) });
  writeSafetensorsFile(extra, x);
  assert.throws(() => importTorchBackbone(extra), /unexpected tensor "layer1\.0\.se\.weight" under ""/);
  const lenient = importTorchBackboneWithReport(extra, { strict: false });
  assert.deepEqual(lenient.report.skippedUnknown, ['layer1.0.se.weight']);
  lenient.net.dispose();

  // Old checkpoints lack BatchNorm counters: they default to 0.
  const old = tmp('old.safetensors');
  writeSafetensorsFile(old, new Map([...state].filter(([k]) => !k.endsWith('num_batches_tracked'))));
  const o = importTorchBackboneWithReport(old);
  assert.equal(o.report.defaulted.length, 20);
  o.net.dispose();
  assert.equal(tf.memory().numTensors, before, 'failed imports leave no tensors behind');
});

test('heads in PyTorch form: MoCo v2 MLP → fc.0/fc.2 indices, BatchNorm heads, MoCo v1 Linear', async () => {
  const safe = (m: { namedState(): Array<[string, tf.Variable]> }) => tensorsToSafe(m.namedState());
  const mocoV2 = new MlpHead(16, [16], 8, { bn: false });
  const h = headToTorch('projector', await safe(mocoV2), 'f');
  assert.deepEqual([...h.tensors.keys()], ['0.weight', '0.bias', '2.weight', '2.bias']);
  assert.deepEqual(h.modules.map((m) => m.type), ['Linear', 'ReLU', 'Linear']);
  assert.deepEqual(h.tensors.get('2.weight')!.shape, [8, 16]);
  const simsiam = new MlpHead(16, [32], 8, { outputBn: 'no-affine' });
  const s = headToTorch('projector', await safe(simsiam), 'f');
  assert.deepEqual(s.modules.map((m) => m.type), ['Linear', 'BatchNorm1d', 'ReLU', 'Linear', 'BatchNorm1d']);
  assert.ok(s.tensors.has('1.running_var') && s.tensors.has('4.running_mean') && !s.tensors.has('4.weight'));
  assert.equal(s.tensors.get('1.num_batches_tracked')!.dtype, 'I64');
  const v1 = new Linear(16, 8, new Rng(0));
  const l = headToTorch('projector', await safe(v1), 'f');
  assert.equal(l.sequential, false);
  assert.deepEqual([...l.tensors.keys()], ['weight', 'bias']);
  assert.throws(() => headToTorch('projector', new Map([['0.conv.weight', l.tensors.get('weight')!]]), 'f.safetensors'), /f\.safetensors: head "projector": tensor "projector\.0\.conv\.weight" does not belong/);
  for (const m of [mocoV2, simsiam, v1]) m.dispose();
});

test('npm run export / import: our checkpoint → torchvision file → our checkpoint, loadBackbone reads it', async () => {
  const start = tf.memory().numTensors;
  const net = new ResNet({ depth: 18, stem: 'cifar', width: 4, seed: 9 });
  randomizeBatchNorm(net, 9);
  const head = new MlpHead(32, [32], 16, { bn: false, seed: 2 });
  const ckptFile = tmp('checkpoint.safetensors');
  const x = randomImages(2, 16, 4);
  try {
    await saveCheckpoint(
      ckptFile,
      [
        ...net.namedState().map(([n, v]) => [`backbone.${n}`, v] as [string, tf.Tensor]),
        ...head.namedState().map(([n, v]) => [`projector.${n}`, v] as [string, tf.Tensor]),
        ...net.namedState().map(([n, v]) => [`target.backbone.${n}`, v] as [string, tf.Tensor]),
      ],
      { backbone: net.config, epoch: 3, step: 30, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } },
    );
    assert.deepEqual([...checkpointHeads(loadCheckpoint(ckptFile).tensors).keys()], ['projector']);
    const exported = tmp('backbone.safetensors');
    const r = exportCheckpointToTorch(ckptFile, exported, { heads: true });
    assert.deepEqual(r.heads, ['projector']);
    const { tensors, metadata } = readSafetensorsFile(exported);
    assert.ok(tensors.has('projector.2.weight') && tensors.has('layer4.1.bn2.running_var'));
    assert.equal(JSON.parse(metadata[TORCH_META.heads]).projector.modules.length, 3);

    const ours = tmp('imported.safetensors');
    const report = await importTorchToCheckpoint(exported, ours);
    assert.deepEqual(report.skippedHead, ['projector.0.weight', 'projector.0.bias', 'projector.2.weight', 'projector.2.bias']);
    const meta = loadCheckpoint(ours).meta;
    assert.deepEqual(meta.normalize, { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, 'the normalisation travels with the weights');
    const back = loadBackbone(ours);
    try {
      assert.deepEqual(back.config, { depth: 18, stem: 'cifar', width: 4, seed: 0 });
      assert.deepEqual(Array.from(features(back, x)), Array.from(features(net, x)));
    } finally {
      back.dispose();
    }
    const bad = tmp('bad.safetensors');
    const broken = loadCheckpoint(ckptFile).tensors;
    broken.set('backbone.layer1.0.conv2.weight', { dtype: 'F32', shape: [3, 3, 4, 5], data: new Float32Array(180) });
    writeSafetensorsFile(bad, broken, readSafetensorsFile(ckptFile).metadata);
    assert.throws(() => exportCheckpointToTorch(bad, tmp('x.safetensors')), /bad\.safetensors: tensor "backbone\.layer1\.0\.conv2\.weight" has shape \[3,3,4,5\], expected \[3,3,4,4\]/);
  } finally {
    net.dispose();
    head.dispose();
    x.dispose();
  }
  assert.equal(tf.memory().numTensors, start, 'export and import leave no tensors behind');
});

test('command-line arguments', () => {
  assert.deepEqual(parseExportArgs(['--checkpoint', 'c.safetensors', '--out', 'b.safetensors', '--heads']), {
    checkpoint: 'c.safetensors', out: 'b.safetensors', heads: true, backbone: 'online',
  });
  assert.throws(() => parseExportArgs(['--checkpoint', 'c.safetensors']), /--out is required/);
  assert.throws(() => parseExportArgs(['--checkpoint', 'c', '--out', 'b.pth']), /--out must end in \.safetensors/);
  const i = parseImportArgs(['--in', 'moco.pth.tar', '--arch', 'resnet50', '--stem', 'imagenet', '--out', 'o.safetensors', '--prefix', '']);
  assert.ok(i !== 'help');
  assert.deepEqual(i.options, { depth: 50, stem: 'imagenet', prefix: '' });
  assert.throws(() => parseImportArgs(['--in', 'a', '--out', 'o.safetensors', '--arch', 'resnet101']), /--arch must be resnet18, resnet34 or resnet50, got 'resnet101'/);
  assert.throws(() => parseImportArgs(['--in', 'a', '--out', 'o.safetensors', '--normalize', 'x']), /--normalize must be none or one of/);
  assert.equal(parseImportArgs(['--help']), 'help');
});

test('a .pth without Python+torch: the error gives the exact conversion command', () => {
  const pth = tmp('checkpoint_0199.pth.tar');
  fs.writeFileSync(pth, 'not really a pickle');
  assert.equal(safetensorsNameFor(pth), pth.replace(/\.pth\.tar$/, '.safetensors'));
  const opts = { candidates: ['/nonexistent/python3'] };
  assert.throws(() => withSafetensors(pth, opts, () => 0), (e: Error) => {
    assert.match(e.message, /checkpoint_0199\.pth\.tar is a PyTorch pickle checkpoint; reading it needs Python with PyTorch/);
    assert.match(e.message, /tried \/nonexistent\/python3/);
    assert.ok(e.message.includes(`python3 ${path.resolve(__dirname, '..', '..', '..', 'scripts', 'pth-to-safetensors.py')} ${pth} ${safetensorsNameFor(pth)}`), e.message);
    return true;
  });
  assert.throws(() => convertPthToSafetensors(tmp('absent.pth'), 'o.safetensors', opts), /absent\.pth: no such file/);
});
