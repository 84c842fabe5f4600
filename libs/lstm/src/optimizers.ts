import * as tf from '@tensorflow/tfjs-core';
import { OPTIMIZER_FIELDS, OPTIMIZER_NAMES, optimizerTakes, type OptimizerName } from './config';
import { LstmConfigError } from './errors';

/**
 * Typed optimizer settings. Which optional fields apply, and their defaults:
 *   sgd       learningRate
 *   momentum  learningRate, momentum = 0.9, nesterov = false
 *   adam      learningRate, beta1 = 0.9, beta2 = 0.999, epsilon = 1e-7
 *   rmsprop   learningRate, decay = 0.9, momentum = 0, epsilon = 1e-7
 * A field that does not apply to the chosen optimizer is an error rather than silently ignored.
 * Centered RMSProp is left out on purpose: tfjs-core 4.22 divides by sqrt(ms - (mg^2 + epsilon))
 * instead of sqrt(ms - mg^2 + epsilon), which is NaN for any parameter whose gradient stays near zero.
 * epsilon defaults to 1e-7 (Keras's value) explicitly, not to tfjs's backend-dependent epsilon, so the
 * same config gives the same updates on every backend.
 */
export interface OptimizerConfig {
  name: OptimizerName;
  learningRate: number;
  momentum?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** RMSProp's discounting factor of the running mean square (tfjs calls it `decay`, PyTorch `alpha`). */
  decay?: number;
  /** Nesterov momentum (momentum optimizer only). */
  nesterov?: boolean;
}

/** An `OptimizerConfig` with every field that applies filled in; what checkpoints store. */
export type ResolvedOptimizerConfig =
  | { name: 'sgd'; learningRate: number }
  | { name: 'momentum'; learningRate: number; momentum: number; nesterov: boolean }
  | { name: 'adam'; learningRate: number; beta1: number; beta2: number; epsilon: number }
  | { name: 'rmsprop'; learningRate: number; decay: number; momentum: number; epsilon: number };

/** Validates an optimizer config and fills its defaults. Throws `LstmConfigError` naming the field. */
export function resolveOptimizerConfig(config: OptimizerConfig, field = 'optimizer'): ResolvedOptimizerConfig {
  if (config === null || typeof config !== 'object')
    throw new LstmConfigError(field, 'an object { name, learningRate, ... }', config);
  const name = config.name;
  if (!OPTIMIZER_NAMES.includes(name))
    throw new LstmConfigError(`${field}.name`, `one of ${OPTIMIZER_NAMES.join(', ')}`, name);
  for (const key of Object.keys(config)) {
    if (key !== 'name' && !optimizerTakes(name, key)) {
      throw new LstmConfigError(
        `${field}.${key}`,
        `only the fields ${OPTIMIZER_FIELDS[name].join(', ')} for optimizer '${name}'`,
        key,
      );
    }
  }
  const num = (
    key: keyof OptimizerConfig,
    dflt: number | undefined,
    ok: (v: number) => boolean,
    domain: string,
  ): number => {
    const v = config[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new LstmConfigError(`${field}.${key}`, domain, v);
    return v;
  };
  const flag = (key: 'nesterov'): boolean => {
    const v = config[key] ?? false;
    if (typeof v !== 'boolean') throw new LstmConfigError(`${field}.${key}`, 'a boolean', v);
    return v;
  };
  const learningRate = num('learningRate', undefined, (v) => v > 0, 'a finite number > 0');
  const unit = (v: number) => v >= 0 && v < 1;
  switch (name) {
    case 'sgd':
      return { name, learningRate };
    case 'momentum':
      return {
        name,
        learningRate,
        momentum: num('momentum', 0.9, unit, 'a number in [0, 1)'),
        nesterov: flag('nesterov'),
      };
    case 'adam':
      return {
        name,
        learningRate,
        beta1: num('beta1', 0.9, unit, 'a number in [0, 1)'),
        beta2: num('beta2', 0.999, unit, 'a number in [0, 1)'),
        epsilon: num('epsilon', 1e-7, (v) => v > 0, 'a finite number > 0'),
      };
    case 'rmsprop':
      return {
        name,
        learningRate,
        decay: num('decay', 0.9, unit, 'a number in [0, 1)'),
        momentum: num('momentum', 0, unit, 'a number in [0, 1)'),
        epsilon: num('epsilon', 1e-7, (v) => v > 0, 'a finite number > 0'),
      };
  }
}

/** Creates the tfjs optimizer a config describes. The caller owns it (free it with `disposeOptimizer`). */
export function createOptimizer(config: OptimizerConfig | ResolvedOptimizerConfig): tf.Optimizer {
  const c = resolveOptimizerConfig(config);
  switch (c.name) {
    case 'sgd':
      return tf.train.sgd(c.learningRate);
    case 'momentum':
      return tf.train.momentum(c.learningRate, c.momentum, c.nesterov);
    case 'adam':
      return tf.train.adam(c.learningRate, c.beta1, c.beta2, c.epsilon);
    case 'rmsprop':
      return tf.train.rmsprop(c.learningRate, c.decay, c.momentum, c.epsilon, false);
  }
}

/**
 * Frees an optimizer's slots and constants. tfjs 4.22's MomentumOptimizer.dispose() forgets the
 * learning-rate scalar it inherits from SGDOptimizer (one tensor per optimizer); this frees it too.
 */
export function disposeOptimizer(optimizer: tf.Optimizer): void {
  optimizer.dispose();
  const c = (optimizer as unknown as { c?: tf.Tensor }).c;
  if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
}

/** One optimizer slot (an Adam moment, a momentum accumulator, ...) as plain data. */
export interface OptimizerSlot {
  /** `<parameter name>/<slot>`, e.g. `weight_ih_l0/m`, `head.bias/momentum`. */
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Everything an optimizer carries between steps, as plain data. */
export interface OptimizerSlots {
  /** Number of `applyGradients` calls so far (Adam's bias correction depends on it). */
  iterations: number;
  /** In the order `getWeights()` lists them (e.g. Adam: every first moment, then every second). */
  slots: OptimizerSlot[];
  /**
   * Adam only: its running powers beta1^(t+1) and beta2^(t+1), kept as float32 products. tfjs's
   * `setWeights` recomputes them with `pow`, which differs in the last bits, and 1 - beta2^t amplifies
   * that ~1/(1 - beta2) times; restoring the saved values makes a resumed run bit-identical.
   */
  adamAccBeta?: [number, number];
}

// AdamOptimizer's private running powers (tfjs-core 4.22); read and written only when present.
type AdamInternals = { accBeta1?: tf.Variable; accBeta2?: tf.Variable };

/**
 * Reads an optimizer's state. tfjs optimizers keep one slot per variable by the position of that
 * variable in the gradient list, named after the variable's engine name (which differs between two
 * model instances); the names are rewritten to the stable parameter names. `variableNames[i]` is the
 * engine name of the variable whose parameter name is `paramNames[i]`, in the order the gradients
 * were applied in.
 */
export async function readOptimizerSlots(
  optimizer: tf.Optimizer,
  variableNames: string[],
  paramNames: string[],
): Promise<OptimizerSlots> {
  const weights = await optimizer.getWeights();
  const [iter, ...slots] = weights;
  try {
    const iterations = (await iter.tensor.data())[0];
    // A slot is named `<variable name>/<kind>` when the optimizer created it, and keeps the name it was
    // given (`<parameter name>/<kind>`) when it was restored by writeOptimizerSlots.
    const toParam = new Map(variableNames.map((v, i) => [v, paramNames[i]]));
    for (const p of paramNames) toParam.set(p, p);
    const out: OptimizerSlot[] = [];
    for (const { name, tensor } of slots) {
      const cut = name.lastIndexOf('/');
      const param = toParam.get(name.slice(0, cut));
      if (param === undefined) throw new Error(`optimizer slot ${name} belongs to no parameter of this model`);
      out.push({
        name: `${param}${name.slice(cut)}`,
        shape: tensor.shape.slice(),
        data: Float32Array.from(await tensor.data()),
      });
    }
    const adam = optimizer as unknown as AdamInternals;
    if (adam.accBeta1 instanceof tf.Tensor && adam.accBeta2 instanceof tf.Tensor) {
      const adamAccBeta: [number, number] = [(await adam.accBeta1.data())[0], (await adam.accBeta2.data())[0]];
      return { iterations, slots: out, adamAccBeta };
    }
    return { iterations, slots: out };
  } finally {
    iter.tensor.dispose(); // a fresh scalar; the slot tensors are the optimizer's own variables
  }
}

/**
 * Restores state read by `readOptimizerSlots` into a fresh optimizer of the same kind. Slots are
 * positional in tfjs, so the same parameter order must be used for the gradients afterwards.
 */
export async function writeOptimizerSlots(optimizer: tf.Optimizer, state: OptimizerSlots): Promise<void> {
  const tensors = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...state.slots.map((s) => ({ name: s.name, tensor: tf.tensor(s.data, s.shape, 'float32') })),
  ];
  try {
    await optimizer.setWeights(tensors);
    const adam = optimizer as unknown as AdamInternals;
    if (state.adamAccBeta && adam.accBeta1 instanceof tf.Tensor && adam.accBeta2 instanceof tf.Tensor) {
      const [b1, b2] = state.adamAccBeta;
      tf.tidy(() => {
        adam.accBeta1!.assign(tf.scalar(b1));
        adam.accBeta2!.assign(tf.scalar(b2));
      });
    }
  } finally {
    // setWeights makes its own variables from these tensors.
    tf.dispose(tensors.map((t) => t.tensor));
  }
}
