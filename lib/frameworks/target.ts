import * as tf from '@tensorflow/tfjs';
import { Module } from '../models/module';

/**
 * A container for the momentum (EMA) copies of online modules: MoCo's key encoder, BYOL's
 * target network. State names are `target.<child>.…`, parallel to the online names.
 */
export class TargetNetworks extends Module {
  add<M extends Module>(name: string, copy: M, of: Module): M {
    copy.copyFrom(of);
    return this.addChild(name, copy);
  }
}

/** Pairs of (target, online) parameters by name, for the EMA update. */
export function emaPairs(framework: Module): { target: Array<[string, tf.Variable]>; online: Array<[string, tf.Variable]> } {
  const all = new Map(framework.namedParameters());
  const target: Array<[string, tf.Variable]> = [];
  const online: Array<[string, tf.Variable]> = [];
  for (const [name, v] of all) {
    if (!name.startsWith('target.')) continue;
    const onlineName = name.slice('target.'.length);
    const o = all.get(onlineName);
    if (!o) throw new Error(`target parameter "${name}" has no online counterpart "${onlineName}"`);
    target.push([onlineName, v]);
    online.push([onlineName, o]);
  }
  return { target, online };
}
