import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { BlockOptions, Grid, MaskType, checkGridSize, checkImageSize, checkRatio, makeGrids, pixelLambda } from './grid';
import {
  boxLambda,
  boxMask,
  cutmixBox,
  eraseWith,
  flipIndex,
  inverseIndex,
  mixWithPartner,
  mixupWithPartner,
  permutationIndex,
  upsampleGrid,
  Box,
} from './mix';

/**
 * The view methods of docs/method.md behind one call: `makeViews(x, spec, rng)` returns the extra
 * (mixed or erased) views of the first-view batch x that a framework's loss needs.
 *
 *   none     → []                       plain Siamese training
 *   mixmask  → [grid-mixed view]        partner = flip (or a permutation, option)
 *   erase    → [erased view]            no partner, no asymmetric term
 *   unmix    → [mixup or CutMix view]   partner = flip
 *   both     → [Un-Mix view (flip), MixMask view (random permutation)]
 *
 * The loss template for a view v (output q of v.mixed, targets k2 of the second views):
 *   λ·L(q → k2) + (1−λ)·L(gather(q, v.inverseIndex) → k2)
 * with per-sample weights v.lambdas (by mixed-view row) and partnerShares(v) (by partner row)
 * when masks are per sample.
 */
export type ViewMethod = 'none' | 'mixmask' | 'erase' | 'unmix' | 'both';

export interface ViewSpec {
  method: ViewMethod;
  /** Grid mask type for mixmask / erase / both (default 'block', the paper's). */
  maskType?: MaskType;
  /** Cells per side g (default 8). */
  gridSize?: number;
  /** Share of cells filled from the partner (default 0.5). */
  ratio?: number;
  /** One mask per sample instead of one per batch (default false, as the official code). */
  perSample?: boolean;
  /** MixMask partner in 'mixmask' mode (default 'flip'); 'both' always uses a permutation. */
  partner?: 'flip' | 'permutation';
  /** Un-Mix: probability of a global mixup rather than CutMix (default 0.5). */
  unmixProb?: number;
  /** Un-Mix: λu ~ Beta(alpha, alpha) (default 1, i.e. uniform). */
  unmixAlpha?: number;
  /** Erase: value of the erased pixels, a scalar or one per channel (default 0). */
  fill?: number | number[];
  /** Block generator knobs (defaults: BEiT's). */
  block?: BlockOptions;
  /**
   * The asymmetric loss of a mixed view (default true): λ·L(x_m → x₂) + (1−λ)·L(partner⁻¹(x_m) → x₂).
   * False replaces it by one plain term L(x_m → x₂) of weight 1 (the ablation of docs/method.md);
   * only meaningful for methods with a partner (mixmask, unmix, both).
   */
  asymmetric?: boolean;
}

export type ViewKind = 'mixmask' | 'erase' | 'unmix-mixup' | 'unmix-cutmix';

export interface View {
  kind: ViewKind;
  /** The view fed to the online encoder, [N, H, W, C]. */
  mixed: tf.Tensor4D;
  /** Pixel mask M ([1, H, W, 1] per batch or [N, H, W, 1] per sample; 1 = own content); null for a global mixup. */
  mask: tf.Tensor4D | null;
  /** Cell grids behind the mask (one per batch or one per sample); null for Un-Mix. */
  grids: Grid[] | null;
  /** CutMix box (Un-Mix CutMix only). */
  box: Box | null;
  /** Realised share of own content, averaged over the batch (= every sample's λ with one mask per batch). */
  lambda: number;
  /** Realised share of own content of each mixed-view row, length N. */
  lambdas: Float64Array;
  /** mixed[i] holds content of x[partnerIndex[i]] where M = 0; null for erase. */
  partnerIndex: Int32Array | null;
  /** argsort(partnerIndex): gather(outputs, inverseIndex)[j] is the view whose partner is image j; null for erase. */
  inverseIndex: Int32Array | null;
  /** Whether the loss scores this view with the two λ-weighted terms (own and partner) or one plain term; false for erase. */
  asymmetric: boolean;
}

/** Resolves defaults and validates a spec; errors name the field and its value. */
export function resolveViewSpec(spec: ViewSpec): Required<Omit<ViewSpec, 'block'>> & { block: BlockOptions } {
  const methods: ViewMethod[] = ['none', 'mixmask', 'erase', 'unmix', 'both'];
  if (!methods.includes(spec.method)) throw new Error(`masks: method must be one of ${methods.join(', ')}, got ${JSON.stringify(spec.method)}`);
  const r = {
    method: spec.method,
    maskType: spec.maskType ?? 'block',
    gridSize: spec.gridSize ?? 8,
    ratio: spec.ratio ?? 0.5,
    perSample: spec.perSample ?? false,
    partner: spec.partner ?? 'flip',
    unmixProb: spec.unmixProb ?? 0.5,
    unmixAlpha: spec.unmixAlpha ?? 1,
    fill: spec.fill ?? 0,
    block: spec.block ?? {},
    asymmetric: spec.asymmetric ?? true,
  };
  if (r.maskType !== 'block' && r.maskType !== 'discrete') throw new Error(`masks: maskType must be 'block' or 'discrete', got ${JSON.stringify(r.maskType)}`);
  checkGridSize(r.gridSize);
  checkRatio(r.ratio);
  checkRatio(r.unmixProb, 'unmixProb');
  if (!(r.unmixAlpha > 0)) throw new Error(`masks: unmixAlpha must be > 0, got ${r.unmixAlpha}`);
  if (r.partner !== 'flip' && r.partner !== 'permutation') throw new Error(`masks: partner must be 'flip' or 'permutation', got ${JSON.stringify(r.partner)}`);
  if (typeof r.asymmetric !== 'boolean') throw new Error(`masks: asymmetric must be true or false, got ${JSON.stringify(r.asymmetric)}`);
  if (!r.asymmetric && (r.method === 'none' || r.method === 'erase')) {
    throw new Error(`masks: asymmetric: false switches off the partner term of a mixed view; method '${r.method}' has no partner`);
  }
  return r;
}

function checkInput(x: tf.Tensor): asserts x is tf.Tensor4D {
  if (x.rank !== 4) throw new Error(`masks: x must be a [N, H, W, C] batch, got shape [${x.shape.join(', ')}]`);
}

/** Grid-mask view: MixMask (with a partner) or erase (without). */
function gridView(x: tf.Tensor4D, s: ReturnType<typeof resolveViewSpec>, rng: Rng, partner: Int32Array | null): View {
  const [n, h, w] = x.shape;
  checkImageSize(h, w, s.gridSize);
  const grids = makeGrids(s.maskType, s.gridSize, s.ratio, rng, n, s.perSample, s.block);
  const lambdas = new Float64Array(n);
  const perGrid = grids.map((gr) => pixelLambda(gr, h, w));
  for (let i = 0; i < n; i++) lambdas[i] = perGrid[s.perSample ? i : 0];
  const mask = upsampleGrid(grids, h, w);
  let mixed: tf.Tensor4D;
  try {
    mixed = partner ? mixWithPartner(x, mask, partner) : eraseWith(x, mask, s.fill);
  } catch (e) {
    mask.dispose();
    throw e;
  }
  return {
    kind: partner ? 'mixmask' : 'erase',
    mixed,
    mask,
    grids,
    box: null,
    lambda: perGrid.reduce((a, b) => a + b, 0) / perGrid.length,
    lambdas,
    partnerIndex: partner,
    inverseIndex: partner ? inverseIndex(partner) : null,
    asymmetric: partner !== null && s.asymmetric,
  };
}

/**
 * Un-Mix view with the flip partner: λu ~ Beta(α, α); with probability unmixProb a global
 * mixup λu·x + (1−λu)·flip(x), otherwise a CutMix box pasted from flip(x), with λu then
 * recomputed from the clipped box (share of own pixels). Draw order: λu, the coin, the centre.
 */
export function unmix(x: tf.Tensor4D, rng: Rng, opts: { prob?: number; alpha?: number; asymmetric?: boolean } = {}): View {
  checkInput(x);
  const prob = opts.prob ?? 0.5;
  const alpha = opts.alpha ?? 1;
  checkRatio(prob, 'unmixProb');
  if (!(alpha > 0)) throw new Error(`masks: unmixAlpha must be > 0, got ${alpha}`);
  const [n, h, w] = x.shape;
  const partner = flipIndex(n);
  const inverse = inverseIndex(partner);
  let lam = rng.beta(alpha, alpha);
  if (rng.next() < prob) {
    return {
      kind: 'unmix-mixup',
      mixed: mixupWithPartner(x, lam, partner),
      mask: null,
      grids: null,
      box: null,
      lambda: lam,
      lambdas: new Float64Array(n).fill(lam),
      partnerIndex: partner,
      inverseIndex: inverse,
      asymmetric: opts.asymmetric ?? true,
    };
  }
  const box = cutmixBox(h, w, lam, rng);
  lam = boxLambda(box, h, w);
  const mask = boxMask(box, h, w);
  return {
    kind: 'unmix-cutmix',
    mixed: mixWithPartner(x, mask, partner),
    mask,
    grids: null,
    box,
    lambda: lam,
    lambdas: new Float64Array(n).fill(lam),
    partnerIndex: partner,
    inverseIndex: inverse,
    asymmetric: opts.asymmetric ?? true,
  };
}

/**
 * The extra views for `spec.method` (see the module comment). Random decisions come from `rng`
 * only, in a fixed order, so one seed reproduces the views. The caller owns the tensors of the
 * returned views (disposeViews).
 */
export function makeViews(x: tf.Tensor4D, spec: ViewSpec, rng: Rng): View[] {
  checkInput(x);
  const s = resolveViewSpec(spec);
  const n = x.shape[0];
  switch (s.method) {
    case 'none':
      return [];
    case 'mixmask':
      return [gridView(x, s, rng, s.partner === 'flip' ? flipIndex(n) : permutationIndex(n, rng))];
    case 'erase':
      return [gridView(x, s, rng, null)];
    case 'unmix':
      return [unmix(x, rng, { prob: s.unmixProb, alpha: s.unmixAlpha, asymmetric: s.asymmetric })];
    case 'both': {
      const u = unmix(x, rng, { prob: s.unmixProb, alpha: s.unmixAlpha, asymmetric: s.asymmetric });
      try {
        return [u, gridView(x, s, rng, permutationIndex(n, rng))];
      } catch (e) {
        disposeViews([u]);
        throw e;
      }
    }
  }
}

/** The single view of a one-view method ('mixmask', 'erase', 'unmix'). */
export function makeView(x: tf.Tensor4D, spec: ViewSpec, rng: Rng): View {
  if (spec.method === 'none' || spec.method === 'both') {
    throw new Error(`masks: makeView needs a one-view method (mixmask, erase, unmix), got ${JSON.stringify(spec.method)}; use makeViews`);
  }
  return makeViews(x, spec, rng)[0];
}

/**
 * Weights of the partner term by partner row: out[j] = 1 − λ of the mixed view whose partner is
 * image j (i.e. 1 − lambdas[inverseIndex[j]]), matching gather(outputs, inverseIndex).
 */
export function partnerShares(view: View): Float64Array {
  if (!view.inverseIndex) throw new Error('masks: an erase view has no partner');
  const out = new Float64Array(view.lambdas.length);
  for (let j = 0; j < out.length; j++) out[j] = 1 - view.lambdas[view.inverseIndex[j]];
  return out;
}

export function disposeView(view: View): void {
  view.mixed.dispose();
  view.mask?.dispose();
}

export function disposeViews(views: View[]): void {
  for (const v of views) disposeView(v);
}
