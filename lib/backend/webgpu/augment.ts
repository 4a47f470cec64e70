import type * as tf from '@tensorflow/tfjs';
import { AUGMENT_STEPS, AUGMENT_VIEW_KERNEL, type AugmentViewAttrs, LUMA, checkAugmentView, normalizeCoefficients } from '../augment-op';
import { type KernelArgs, type Uniform, type WebgpuBackendLike, type WebgpuProgram, addKernel } from './program';

/**
 * One augmented view on webgpu under the contract of lib/backend/augment-op.ts, in one dispatch
 * (two when the view has a contrast step) where the composite tfjs ops take ~75.
 *
 * Pass 1 (contrast only): one workgroup per image samples every output pixel, applies the steps
 * before the contrast step and sums the three channels (strided per invocation, then a tree in
 * workgroup memory, in a fixed order), then mean gray = Σ LUMA_c · (sum_c / pixels), as the
 * composite's mean over the image followed by the luma product.
 * Pass 2: one invocation per output pixel samples it, applies every step (contrast with pass 1's
 * mean of its image), normalises and writes its three channels.
 *
 * The steps and the normalisation are uniforms, not shader text, so the 24 jitter orders, the
 * grayscale's place and solarize on or off share two pipelines (a shader per combination would
 * compile ~150 of them over a run). Every formula is the composite op's, term for term, and the
 * bilinear sample takes its coordinates from the contract's double-precision grid, so the kernel
 * agrees with the cpu composite to float32 rounding (test/backend/webgpu-augment.test.ts).
 */
const WG = 64;
const MAX_STEPS = AUGMENT_STEPS.length;

const UNIFORMS = [
  'pixels : i32, outSize : i32, nSteps : i32, contrastAt : i32, normalize : i32,',
  ...Array.from({ length: MAX_STEPS }, (_, k) => `step${k} : i32,`),
  'scale0 : f32, scale1 : f32, scale2 : f32, bias0 : f32, bias1 : f32, bias2 : f32,',
].join(' ');

const lit = (v: number): string => {
  const s = String(Math.fround(v));
  return s.includes('.') || s.includes('e') ? s : `${s}.0`;
};

/** Sampling and the steps, shared by both passes (inputs image, grid, factors, masks). */
function commonWgsl(): string {
  const code = (s: string): number => AUGMENT_STEPS.indexOf(s as (typeof AUGMENT_STEPS)[number]);
  const cases = Array.from({ length: MAX_STEPS }, (_, k) => `case ${k}: { return uniforms.step${k}; }`).join('\n          ');
  return `
      fn stepCode(k : i32) -> i32 {
        switch k {
          ${cases}
          default: { return -1; }
        }
      }

      fn gray(p : vec3<f32>) -> f32 {
        return p.r * ${lit(LUMA[0])} + p.g * ${lit(LUMA[1])} + p.b * ${lit(LUMA[2])};
      }

      // other + (x - other)·f, clipped to [0, 1]: the composite's blend.
      fn blend(x : vec3<f32>, other : vec3<f32>, f : f32) -> vec3<f32> {
        return clamp(other + (x - other) * f, vec3<f32>(0.0), vec3<f32>(1.0));
      }

      fn hueChannel(hs : f32, offset : f32, maxc : f32, c : f32) -> f32 {
        let k0 = hs + offset;
        let k = k0 - floor(k0 * (1.0 / 6.0)) * 6.0;
        return maxc - c * clamp(min(k, 4.0 - k), 0.0, 1.0);
      }

      // adjustHue: torchvision's hue, rotated by shift6 (sixths of a turn), back by the closed form.
      fn hue(p : vec3<f32>, shift6 : f32) -> vec3<f32> {
        let maxc = max(max(p.r, p.g), p.b);
        let minc = min(min(p.r, p.g), p.b);
        let c = maxc - minc;
        let inv = 1.0 / max(c, 1e-12);
        var h6 : f32;
        if (maxc == p.r) {
          h6 = (p.g - p.b) * inv;
        } else if (maxc == p.g) {
          h6 = (p.b - p.r) * inv + 2.0;
        } else {
          h6 = (p.r - p.g) * inv + 4.0;
        }
        let hs = h6 + shift6;
        return vec3<f32>(hueChannel(hs, 5.0, maxc, c), hueChannel(hs, 3.0, maxc, c), hueChannel(hs, 1.0, maxc, c));
      }

      fn pixel(b : i32, y : i32, x : i32) -> vec3<f32> {
        let i = ((b * uniforms.imageShape[1] + y) * uniforms.imageShape[2] + x) * 3;
        return vec3<f32>(image[i], image[i + 1], image[i + 2]);
      }

      // Sample i of an axis sits at start + i·step source pixels (grid: ⌊start⌋, its fraction,
      // step head, tail); returns (integer part, weight). i·head is exact and so are its integer
      // part and fraction; the weight is then a sum of fractions, off by one rounding below 2.
      fn coordinate(g : i32, i : i32) -> vec2<f32> {
        let v = f32(i) * grid[g + 2];
        let vWhole = floor(v);
        let w0 = grid[g + 1] + (v - vWhole) + f32(i) * grid[g + 3];
        let wWhole = floor(w0);
        var whole = grid[g] + vWhole + wWhole;
        var w = w0 - wWhole;
        if (w >= 1.0) {
          whole = whole + 1.0;
          w = w - 1.0;
        }
        return vec2<f32>(whole, w);
      }

      // tf.image.cropAndResize (bilinear, extrapolation value 0) at output pixel (y, x) of image b.
      fn samplePixel(b : i32, y : i32, x : i32) -> vec3<f32> {
        let hm1 = f32(uniforms.imageShape[1] - 1);
        let wm1 = f32(uniforms.imageShape[2] - 1);
        let cy = coordinate(8 * b, y);
        let cx = coordinate(8 * b + 4, x);
        // Outside [0, H − 1] × [0, W − 1]: the extrapolation value.
        if (cy.x < 0.0 || cy.x > hm1 || (cy.x == hm1 && cy.y > 0.0) || cx.x < 0.0 || cx.x > wm1 || (cx.x == wm1 && cx.y > 0.0)) {
          return vec3<f32>(0.0);
        }
        let top = i32(cy.x);
        let left = i32(cx.x);
        // ceil of the coordinate: the same row (column) when the weight is 0.
        let bottom = top + select(0, 1, cy.y > 0.0);
        let right = left + select(0, 1, cx.y > 0.0);
        let tl = pixel(b, top, left);
        let tr = pixel(b, top, right);
        let bl = pixel(b, bottom, left);
        let br = pixel(b, bottom, right);
        let t = tl + (tr - tl) * cx.y;
        let d = bl + (br - bl) * cx.y;
        return t + (d - t) * cy.y;
      }

      // Steps [first, end) of the view on pixel p of image b; meanGray: the image's, for contrast.
      fn applySteps(p0 : vec3<f32>, b : i32, first : i32, end : i32, meanGray : f32) -> vec3<f32> {
        var p = p0;
        for (var k = first; k < end; k++) {
          let s = stepCode(k);
          if (s == ${code('grayscale')}) {
            p = p + (vec3<f32>(gray(p)) - p) * masks[2 * b];
          } else if (s == ${code('brightness')}) {
            p = clamp(p * factors[4 * b], vec3<f32>(0.0), vec3<f32>(1.0));
          } else if (s == ${code('contrast')}) {
            p = blend(p, vec3<f32>(meanGray), factors[4 * b + 1]);
          } else if (s == ${code('saturation')}) {
            p = blend(p, vec3<f32>(gray(p)), factors[4 * b + 2]);
          } else if (s == ${code('hue')}) {
            p = hue(p, 6.0 * factors[4 * b + 3]);
          } else if (s == ${code('solarize')}) {
            p = p + (min(p, vec3<f32>(1.0) - p) - p) * masks[2 * b + 1];
          }
        }
        return p;
      }
  `;
}

/** Pass 1: [n] mean gray level of each image as the contrast step sees it. */
class MeanGrayProgram implements WebgpuProgram {
  variableNames = ['image', 'grid', 'factors', 'masks'];
  outputShape: number[];
  shaderKey = 'mixmaskAugmentMeanGray';
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = UNIFORMS;

  constructor(n: number) {
    this.outputShape = [n];
    this.dispatch = [n, 1, 1];
  }

  getUserCode(): string {
    return `
      ${commonWgsl()}
      var<workgroup> partial : array<vec3<f32>, ${WG}>;

      fn main(index : i32) {
        // One workgroup per image (the backend may fold a long dispatch: the flat index still
        // counts workgroups in order).
        let b = index / ${WG};
        let lane = index - b * ${WG};
        let n = uniforms.outShape;
        let pixels = uniforms.outSize * uniforms.outSize;
        var s = vec3<f32>(0.0);
        if (b < n) {
          for (var q = lane; q < pixels; q += ${WG}) {
            let y = q / uniforms.outSize;
            s += applySteps(samplePixel(b, y, q - y * uniforms.outSize), b, 0, uniforms.contrastAt, 0.0);
          }
        }
        partial[lane] = s;
        workgroupBarrier();
        for (var stride = ${WG / 2}; stride > 0; stride = stride / 2) {
          if (lane < stride) {
            partial[lane] = partial[lane] + partial[lane + stride];
          }
          workgroupBarrier();
        }
        if (lane == 0 && b < n) {
          result[b] = gray(partial[0] / f32(pixels));
        }
      }
    `;
  }
}

/** Pass 2: [n, S, S, 3], one invocation per output pixel. */
class AugmentViewProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1, 2, 3] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = UNIFORMS;

  constructor(
    n: number,
    size: number,
    private readonly withMean: boolean,
  ) {
    this.variableNames = withMean ? ['image', 'grid', 'factors', 'masks', 'meanGray'] : ['image', 'grid', 'factors', 'masks'];
    this.outputShape = [n, size, size, 3];
    this.dispatch = [Math.ceil((n * size * size) / WG), 1, 1];
    this.shaderKey = `mixmaskAugmentView_${withMean}`;
  }

  getUserCode(): string {
    return `
      ${commonWgsl()}

      fn main(index : i32) {
        if (index < uniforms.pixels) {
          let perImage = uniforms.outSize * uniforms.outSize;
          let b = index / perImage;
          let q = index - b * perImage;
          let y = q / uniforms.outSize;
          var p = applySteps(samplePixel(b, y, q - y * uniforms.outSize), b, 0, uniforms.nSteps, ${this.withMean ? 'meanGray[b]' : '0.0'});
          if (uniforms.normalize == 1) {
            p = p * vec3<f32>(uniforms.scale0, uniforms.scale1, uniforms.scale2) + vec3<f32>(uniforms.bias0, uniforms.bias1, uniforms.bias2);
          }
          result[3 * index] = p.r;
          result[3 * index + 1] = p.g;
          result[3 * index + 2] = p.b;
        }
      }
    `;
  }
}

function augmentView(args: KernelArgs): tf.TensorInfo {
  const backend = args.backend as WebgpuBackendLike;
  const { image, grid, factors, masks } = args.inputs as Record<string, tf.TensorInfo>;
  const attrs = args.attrs as unknown as AugmentViewAttrs;
  const who = `${AUGMENT_VIEW_KERNEL} on webgpu`;
  const { n, contrastAt } = checkAugmentView(who, { image: image.shape, grid: grid.shape, factors: factors.shape, masks: masks.shape }, attrs);
  for (const [name, t] of Object.entries({ image, grid, factors, masks })) {
    if (t.dtype !== 'float32') throw new Error(`${who}: ${name} must be float32, got ${t.dtype}`);
  }
  const { size, steps } = attrs;
  const norm = attrs.mean.length === 3 ? normalizeCoefficients({ mean: attrs.mean as [number, number, number], std: attrs.std as [number, number, number] }) : null;
  const codes = Array.from({ length: MAX_STEPS }, (_, k) => (k < steps.length ? AUGMENT_STEPS.indexOf(steps[k]) : -1));
  const uniforms: Uniform[] = [
    ...[n * size * size, size, steps.length, contrastAt, norm ? 1 : 0, ...codes].map((v): Uniform => ({ type: 'int32', data: [v] })),
    ...[...(norm?.scale ?? [1, 1, 1]), ...(norm?.bias ?? [0, 0, 0])].map((v): Uniform => ({ type: 'float32', data: [v] })),
  ];
  const inputs = [image, grid, factors, masks];
  if (contrastAt < 0) return backend.runWebGPUProgram(new AugmentViewProgram(n, size, false), inputs, 'float32', uniforms);
  const mean = backend.runWebGPUProgram(new MeanGrayProgram(n), inputs, 'float32', uniforms);
  try {
    return backend.runWebGPUProgram(new AugmentViewProgram(n, size, true), [...inputs, mean], 'float32', uniforms);
  } finally {
    backend.disposeData(mean.dataId);
  }
}

let installed = false;

/** Registers the fused augmentation kernel for webgpu. Idempotent. */
export function installAugmentView(): void {
  if (installed) return;
  addKernel(AUGMENT_VIEW_KERNEL, augmentView);
  installed = true;
}
