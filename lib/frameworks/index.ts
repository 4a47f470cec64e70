import type { ResNetConfig } from '../models/resnet';
import { Byol } from './byol';
import { Framework } from './base';
import { Moco } from './moco';
import { Simclr } from './simclr';
import { Simsiam } from './simsiam';

export { Framework } from './base';
export type { FrameworkCommon, OnlineOutput, StepResult } from './base';
export { Moco } from './moco';
export type { MocoOptions } from './moco';
export { Simclr } from './simclr';
export type { SimclrOptions } from './simclr';
export { Byol } from './byol';
export type { ByolOptions } from './byol';
export { Simsiam } from './simsiam';
export type { SimsiamOptions } from './simsiam';

export type FrameworkName = 'moco-v1' | 'moco-v2' | 'simclr' | 'byol' | 'simsiam';
export const FRAMEWORKS: readonly FrameworkName[] = ['moco-v1', 'moco-v2', 'simclr', 'byol', 'simsiam'];

/** Head and target settings of every framework (each uses the fields it needs). */
export interface HeadConfig {
  /** Output (embedding) dimension. */
  dim: number;
  /** Hidden width of the projector. */
  projHidden: number;
  /** Hidden width of the predictor (BYOL, SimSiam). */
  predHidden: number;
  /** Contrastive temperature (MoCo moco-t, SimCLR τ). */
  temperature: number;
  /** MoCo queue length. */
  queueSize: number;
  /**
   * The target networks' EMA coefficient (MoCo's key-encoder momentum m, BYOL's base τ); not
   * SGD's momentum, which is the optimizer's.
   */
  targetMomentum: number;
  /** MoCo: emulated shuffle-BN devices. */
  bnSplits: number;
}

export function makeFramework(name: FrameworkName, backbone: Required<ResNetConfig>, heads: HeadConfig, seed: number): Framework {
  const common = { backbone, seed };
  switch (name) {
    case 'moco-v1':
    case 'moco-v2':
      return new Moco({
        ...common, version: name === 'moco-v1' ? 1 : 2, dim: heads.dim, queueSize: heads.queueSize,
        targetMomentum: heads.targetMomentum, temperature: heads.temperature, bnSplits: heads.bnSplits,
      });
    case 'simclr':
      return new Simclr({ ...common, projHidden: heads.projHidden, dim: heads.dim, temperature: heads.temperature });
    case 'byol':
      return new Byol({ ...common, projHidden: heads.projHidden, dim: heads.dim, predHidden: heads.predHidden, tau: heads.targetMomentum });
    case 'simsiam':
      return new Simsiam({ ...common, projHidden: heads.projHidden, dim: heads.dim, predHidden: heads.predHidden });
    default:
      throw new Error(`framework must be one of ${FRAMEWORKS.join(', ')}, got ${JSON.stringify(name)}`);
  }
}
