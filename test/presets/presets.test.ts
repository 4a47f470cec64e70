import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { FRAMEWORKS } from '../../lib/frameworks';
import { TABLE1, TABLE2, TABLE3, pretrainConfig, table1Rows } from '../../lib/presets';

test('Table 1 as in the supplementary', () => {
  assert.deepEqual(table1Rows('moco'), [
    ['backbone', 'resnet18'], ['optimizer', 'SGD'], ['lr', '0.06'], ['batch size', '512'], ['opt momentum', '0.90'],
    ['epochs', '1,000'], ['weight decay', '5e-4'], ['embed-dim', '128'], ['moco-m', '0.99'], ['moco-k', '4,096'],
    ['unmix prob', '0.50'], ['moco-t', '0.10'],
  ]);
  assert.deepEqual(table1Rows('byol'), [
    ['backbone', 'resnet18'], ['optimizer', 'Adam'], ['lr', '0.003/0.002'], ['batch size', '512'], ['proj layers', '2'],
    ['epochs', '1,000'], ['weight decay', '5e-4'], ['embed-dim', '64/128'], ['Adam l2', '1e-6'], ['proj dim', '1,024'],
    ['unmix prob', '0.50'], ['byol tau', '0.99'],
  ]);
  assert.equal(TABLE1.simsiam.warmupEpochs, 10);
  assert.equal(TABLE1.simsiam.lr.cifar100, 0.03);
  assert.equal(TABLE2.pretraining.mocoK, 65536);
  assert.equal(TABLE2.linearProbe.lr, 30);
  assert.deepEqual(TABLE3.lrClassifier, { '1%': 0.5, '10%': 0.5, '100%': 0.05 });
});

test('the paper profile runs Table 1 value for value', () => {
  const moco = pretrainConfig('moco-v2', 'cifar100', 'paper');
  assert.deepEqual(moco.optimizer, { kind: 'sgd', lr: 0.06, momentum: 0.9, weightDecay: 5e-4 });
  assert.equal(moco.epochs, 1000);
  assert.equal(moco.batchSize, 512);
  assert.deepEqual([moco.heads.dim, moco.heads.queueSize, moco.heads.targetMomentum, moco.heads.temperature], [128, 4096, 0.99, 0.1]);
  assert.deepEqual(moco.backbone, { depth: 18, stem: 'cifar', width: 64, seed: 0 });
  assert.equal(moco.trainSubset, null);
  assert.deepEqual(moco.view, { method: 'mixmask', maskType: 'block', gridSize: 8, ratio: 0.5, unmixProb: 0.5 });

  const byolTiny = pretrainConfig('byol', 'tiny-imagenet', 'paper');
  assert.deepEqual(byolTiny.optimizer, { kind: 'adam', lr: 0.002, weightDecay: 1e-6 });
  assert.equal(byolTiny.heads.dim, 128);
  assert.equal(byolTiny.imageSize, 64);
  assert.equal(pretrainConfig('simclr', 'cifar100', 'paper').heads.dim, 64);
  assert.deepEqual(pretrainConfig('simsiam', 'cifar100', 'paper').schedule, { kind: 'cosine', warmupEpochs: 10, fixedLrModules: ['predictor'] });
});

test('cpu and smoke profiles shrink the budget and scale what depends on it', () => {
  for (const fw of FRAMEWORKS) {
    const cpu = pretrainConfig(fw, 'fashion-mnist', 'cpu');
    const smoke = pretrainConfig(fw, 'synthetic', 'smoke');
    assert.ok(cpu.backbone.width < 64 && cpu.epochs < 1000 && cpu.trainSubset !== null);
    assert.ok(smoke.epochs <= cpu.epochs && smoke.trainSubset! < cpu.trainSubset!);
    // Only SimSiam's predictor keeps a fixed rate.
    assert.deepEqual(cpu.schedule.fixedLrModules, fw === 'simsiam' ? ['predictor'] : undefined);
  }
  const cpu = pretrainConfig('moco-v2', 'fashion-mnist', 'cpu');
  // SGD learning rate follows the linear scaling rule: 0.06 at 512 → 0.015 at 128.
  assert.ok(Math.abs(cpu.optimizer.lr - (0.06 * cpu.batchSize) / 512) < 1e-12);
  const ss = pretrainConfig('simsiam', 'fashion-mnist', 'cpu');
  // SimSiam's Table 1 rate is for 1,000 epochs: the short profiles raise it (×16), the paper profile does not.
  assert.ok(Math.abs(ss.optimizer.lr - (16 * 0.03 * ss.batchSize) / 512) < 1e-12);
  assert.equal(pretrainConfig('simsiam', 'cifar100', 'paper').optimizer.lr, 0.03);
  // At the cpu budget SimSiam's embedding is 512-d with a 4× bottleneck predictor; Table 1's 128 elsewhere.
  assert.deepEqual([ss.heads.dim, ss.heads.predHidden], [512, 128]);
  assert.deepEqual([pretrainConfig('simsiam', 'cifar100', 'paper').heads.dim, pretrainConfig('simsiam', 'cifar100', 'paper').heads.predHidden], [128, 512]);
  // At the cpu budget the epochs are per framework, as validation chose them: SimCLR 16, MoCo v2, BYOL
  // and SimSiam 32 (SimSiam's warm-up still a quarter, 8 of 32), MoCo v1 (unchecked) the profile's 16;
  // an explicit --epochs still wins, and the paper and smoke profiles are untouched.
  const cpuEpochs = (fw: 'moco-v1' | 'moco-v2' | 'simclr' | 'byol' | 'simsiam') => pretrainConfig(fw, 'fashion-mnist', 'cpu').epochs;
  assert.deepEqual([cpuEpochs('moco-v1'), cpu.epochs, cpuEpochs('simclr'), cpuEpochs('byol'), ss.epochs], [16, 32, 16, 32, 32]);
  assert.equal(pretrainConfig('simsiam', 'fashion-mnist', 'cpu', { epochs: 5 }).epochs, 5);
  assert.equal(pretrainConfig('byol', 'synthetic', 'smoke').epochs, 2);
  assert.deepEqual([pretrainConfig('simsiam', 'cifar100', 'paper').epochs, pretrainConfig('simsiam', 'synthetic', 'smoke').epochs], [1000, 2]);
  assert.deepEqual(ss.schedule, { kind: 'cosine', warmupEpochs: 8, fixedLrModules: ['predictor'] });
  assert.deepEqual(pretrainConfig('simsiam', 'cifar100', 'paper', { epochs: 100 }).schedule, { kind: 'cosine', warmupEpochs: 10, fixedLrModules: ['predictor'] });
  assert.equal(pretrainConfig('byol', 'fashion-mnist', 'cpu', { method: 'none', epochs: 3, width: 8 }).view.method, 'none');
});

test('Fashion-MNIST crops at least half the image unless told otherwise; other datasets keep the recipe\'s crops', () => {
  assert.equal(pretrainConfig('moco-v2', 'fashion-mnist', 'cpu').minCropScale, 0.5);
  assert.equal(pretrainConfig('moco-v2', 'fashion-mnist', 'cpu', { minCropScale: 0.2 }).minCropScale, 0.2);
  assert.equal(pretrainConfig('moco-v2', 'cifar100', 'cpu').minCropScale, undefined);
  assert.equal('minCropScale' in pretrainConfig('byol', 'cifar100', 'paper'), false);
});

test('bad preset arguments are named', () => {
  assert.throws(() => pretrainConfig('moco-v2', 'cifar100', 'laptop' as 'cpu'), /profile must be one of paper, cpu, smoke, got "laptop"/);
  assert.throws(() => pretrainConfig('moco-v2', 'mnist' as 'cifar100', 'cpu'), /dataset must be one of .* got "mnist"/);
  assert.throws(() => pretrainConfig('swav' as 'byol', 'cifar100', 'cpu'), /framework must be one of .* got "swav"/);
});
