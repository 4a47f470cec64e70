import * as tf from '@tensorflow/tfjs';
import { emaAssignList } from '../backend/fused-update-op';
import type { NamedVariables } from './optimizers';

/**
 * EMA of online into target parameters: target ← m·target + (1 − m)·online. The target networks
 * (MoCo's key encoder, BYOL's target) follow it; `m` is their "target momentum", not SGD's.
 */
export function emaUpdate(target: NamedVariables, online: NamedVariables, m: number): void {
  if (target.length !== online.length) throw new Error(`emaUpdate: ${target.length} target vs ${online.length} online parameters`);
  target.forEach(([name], i) => {
    if (name !== online[i][0]) throw new Error(`emaUpdate: parameter ${i} is "${name}" in the target but "${online[i][0]}" online`);
  });
  // One kernel call for every parameter where the backend has it.
  emaAssignList(target.map(([, t], i) => ({ target: t, online: online[i][1] })), m);
}

/** BYOL's target momentum τ, increased from `base` to 1 with a cosine over training. */
export function byolTargetMomentum(base: number, step: number, totalSteps: number): number {
  return 1 - (1 - base) * (Math.cos((Math.PI * step) / Math.max(1, totalSteps)) + 1) / 2;
}
