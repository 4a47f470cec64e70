/**
 * The paper's configurations (supplementary Tables 1–3) as typed data, value for value. The
 * notebooks render the tables from these objects, so the tables shown can never drift from
 * the code; `lib/presets/index.ts` turns them into runnable configurations.
 */
export type Table1Framework = 'moco' | 'simclr' | 'byol' | 'simsiam';

/** Table 1: training on CIFAR-100 and Tiny-ImageNet (ResNet-18). Slash values: CIFAR-100 / Tiny-ImageNet. */
export interface Table1Column {
  backbone: 'resnet18';
  optimizer: 'SGD' | 'Adam';
  lr: { cifar100: number; tinyImagenet: number };
  batchSize: number;
  /** SGD momentum ("opt momentum"). */
  momentum?: number;
  epochs: number;
  weightDecay: number;
  embedDim: { cifar100: number; tinyImagenet: number };
  mocoM?: number;
  mocoK?: number;
  mocoT?: number;
  unmixProb: number;
  projLayers?: number;
  projDim?: number;
  /** "Adam l2": the L2 penalty of the Adam optimiser. */
  adamL2?: number;
  byolTau?: number;
  warmupEpochs?: number;
}

const sgdCommon = { backbone: 'resnet18', optimizer: 'SGD', batchSize: 512, momentum: 0.9, epochs: 1000, weightDecay: 5e-4, unmixProb: 0.5 } as const;
const adamCommon = {
  backbone: 'resnet18', optimizer: 'Adam', lr: { cifar100: 0.003, tinyImagenet: 0.002 }, batchSize: 512, projLayers: 2, epochs: 1000,
  weightDecay: 5e-4, embedDim: { cifar100: 64, tinyImagenet: 128 }, adamL2: 1e-6, projDim: 1024, unmixProb: 0.5,
} as const;

export const TABLE1: Record<Table1Framework, Table1Column> = {
  moco: { ...sgdCommon, lr: { cifar100: 0.06, tinyImagenet: 0.06 }, embedDim: { cifar100: 128, tinyImagenet: 128 }, mocoM: 0.99, mocoK: 4096, mocoT: 0.1 },
  simclr: { ...adamCommon },
  byol: { ...adamCommon, byolTau: 0.99 },
  simsiam: { ...sgdCommon, lr: { cifar100: 0.03, tinyImagenet: 0.03 }, embedDim: { cifar100: 128, tinyImagenet: 128 }, warmupEpochs: 10, projLayers: 2 },
};

/** Table 2: ImageNet-1K pretraining (MoCo v2 + MixMask, ResNet-50) and linear probing. */
export const TABLE2 = {
  pretraining: {
    backbone: 'resnet50', optimizer: 'SGD', lr: 0.03, batchSize: 256, momentum: 0.9, lrSchedule: 'cosine', epochs: [200, 800],
    weightDecay: 0, mocoDim: 128, mocoM: 0.999, mocoK: 65536, mocoT: 0.2, unmixProb: 0.5, maskType: 'block', gridSize: 8,
  },
  linearProbe: { backbone: 'resnet50', optimizer: 'SGD', lr: 30, batchSize: 256, momentum: 0.9, lrSchedule: [60, 80], epochs: 100, weightDecay: 0 },
} as const;

/** Table 3: semi-supervised (1 %, 10 % labels) and supervised (100 %) fine-tuning on ImageNet-1K. */
export const TABLE3 = {
  backbone: 'resnet50',
  optimizer: 'SGD',
  lrBackbone: { '1%': 0.002, '10%': 0.002, '100%': 0.001 },
  lrClassifier: { '1%': 0.5, '10%': 0.5, '100%': 0.05 },
  batchSize: 256,
  momentum: 0.9,
  lrSchedule: [12, 16],
  epochs: 20,
  weightDecay: 0,
} as const;

/** Rows of a table as [hparam, value] pairs in the paper's wording, for rendering. */
export function table1Rows(framework: Table1Framework): Array<[string, string]> {
  const c = TABLE1[framework];
  const slash = (v: { cifar100: number; tinyImagenet: number }) => (v.cifar100 === v.tinyImagenet ? String(v.cifar100) : `${v.cifar100}/${v.tinyImagenet}`);
  const rows: Array<[string, string | number | undefined]> = [
    ['backbone', c.backbone],
    ['optimizer', c.optimizer],
    ['lr', slash(c.lr)],
    ['batch size', c.batchSize],
    ['opt momentum', c.momentum?.toFixed(2)],
    ['proj layers', c.projLayers],
    ['epochs', c.epochs.toLocaleString('en-US')],
    ['weight decay', c.weightDecay.toExponential().replace('e-', 'e-')],
    ['embed-dim', slash(c.embedDim)],
    ['moco-m', c.mocoM],
    ['moco-k', c.mocoK?.toLocaleString('en-US')],
    ['Adam l2', c.adamL2?.toExponential()],
    ['warmup epochs', c.warmupEpochs],
    ['proj dim', c.projDim?.toLocaleString('en-US')],
    ['unmix prob', c.unmixProb.toFixed(2)],
    ['moco-t', c.mocoT?.toFixed(2)],
    ['byol tau', c.byolTau],
  ];
  return rows.filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]);
}
