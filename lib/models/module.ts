import * as tf from '@tensorflow/tfjs';

/**
 * A minimal module tree in the spirit of torch.nn.Module: trainable parameters, non-trainable
 * buffers (BatchNorm running statistics) and named children. Names follow torchvision's
 * state_dict keys (`layer1.0.conv1.weight`, `bn1.running_mean`, …) so that weights can be
 * matched to PyTorch checkpoints by name.
 */
export abstract class Module {
  private readonly params = new Map<string, tf.Variable>();
  private readonly bufs = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();

  protected addParameter(name: string, value: tf.Tensor): tf.Variable {
    const v = tf.variable(value, true);
    value.dispose();
    this.params.set(name, v);
    return v;
  }

  protected addBuffer(name: string, value: tf.Tensor): tf.Variable {
    const v = tf.variable(value, false);
    value.dispose();
    this.bufs.set(name, v);
    return v;
  }

  protected addChild<M extends Module>(name: string, child: M): M {
    this.children.set(name, child);
    return child;
  }

  /** Trainable parameters with their dotted names, in registration order. */
  namedParameters(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.params) out.push([prefix + n, v]);
    for (const [n, c] of this.children) out.push(...c.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Non-trainable state (running statistics) with their dotted names. */
  namedBuffers(prefix = ''): Array<[string, tf.Variable]> {
    const out: Array<[string, tf.Variable]> = [];
    for (const [n, v] of this.bufs) out.push([prefix + n, v]);
    for (const [n, c] of this.children) out.push(...c.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  /** Parameters and buffers: everything that defines the module's state. */
  namedState(prefix = ''): Array<[string, tf.Variable]> {
    return [...this.namedParameters(prefix), ...this.namedBuffers(prefix)];
  }

  trainableVariables(): tf.Variable[] {
    return this.namedParameters().map(([, v]) => v);
  }

  /** Number of trainable scalars (what papers report as "parameters"). */
  parameterCount(): number {
    return this.namedParameters().reduce((n, [, v]) => n + v.size, 0);
  }

  /** Copies every parameter and buffer from a module of identical structure. */
  copyFrom(other: Module): void {
    const mine = this.namedState();
    const theirs = new Map(other.namedState());
    for (const [name, v] of mine) {
      const src = theirs.get(name);
      if (!src) throw new Error(`copyFrom: source module has no state named "${name}"`);
      if (!tf.util.arraysEqual(src.shape, v.shape)) {
        throw new Error(`copyFrom: "${name}" has shape [${src.shape}] in the source, expected [${v.shape}]`);
      }
      v.assign(src);
    }
  }

  dispose(): void {
    for (const [, v] of this.namedState()) v.dispose();
  }
}
