/**
 * The divergence guard's pure parts. A ReLU-LSTM's activations are unbounded, so a learning rate
 * that is too high can blow a training up (the library's `fit` throws `DivergenceError` on a
 * non-finite loss or gradient norm, before the bad update). The engine then rolls the run back to
 * its last good state with a smaller learning rate, up to `DIVERGENCE_RETRIES` times within the
 * same attempt; these helpers build the state to roll back to and the final job error.
 */
import type { DivergenceError, SequenceModel, TrainingState } from '@relu-lstm/lstm';
import type { JobErrorInput } from '@relu-lstm/jobs';

/**
 * A state the run can go back to: a periodic checkpoint of this run (`checkpoint: true`) or the
 * checkpoint the attempt resumed from. Null: the job's initial weights (rebuilt from the seed).
 */
export type RollbackPoint = { state: TrainingState; checkpoint: boolean } | null;

/**
 * `state` continued with another learning rate. Everything else (weights, optimizer slots, position,
 * generators) is the state's, so the retry replays the same batches in the same order. `fit` checks a
 * resumed state's optimizer config against the one it is given, so the rate is changed in both.
 */
export function rollbackTarget(state: TrainingState, learningRate: number): TrainingState {
  return { ...state, optimizer: { ...state.optimizer, config: { ...state.optimizer.config, learningRate } } };
}

/** The job error once the retries are used up: `diverged`, with where it happened. */
export function divergenceFailure(e: DivergenceError, rollbacks: number, learningRate: number): JobErrorInput {
  const after =
    rollbacks > 0 ? ` (after ${rollbacks} rollback${rollbacks === 1 ? '' : 's'}, learning rate ${learningRate})` : '';
  return {
    code: 'diverged',
    message: `${e.message}${after}`,
    retryable: false,
    details: { epoch: e.epoch, step: e.step, quantity: e.quantity, value: String(e.value), rollbacks, learningRate },
  };
}

/** A non-finite number found in a weight or an optimizer slot, and where. */
export interface NonFinite {
  name: string;
  value: number;
}

function firstNonFinite(name: string, data: ArrayLike<number>): NonFinite | null {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return { name, value: data[i] };
  return null;
}

/**
 * The first non-finite weight or optimizer slot of a captured state. `fit` checks the loss and the
 * gradient norm of every step before its update, but not what the update produced: finite gradients
 * times a huge learning rate can overflow a weight (or Adam's second moment). The last update of an
 * epoch would go unchecked into its checkpoint, and rolling back to that checkpoint would fail again.
 */
export function nonFiniteInState(state: TrainingState): NonFinite | null {
  for (const [name, t] of Object.entries(state.weights)) {
    const bad = firstNonFinite(name, t.data);
    if (bad) return bad;
  }
  for (const slot of state.optimizer.slots) {
    const bad = firstNonFinite(slot.name, slot.data);
    if (bad) return bad;
  }
  return null;
}

/** The first non-finite weight of a model (after the last update of a run). */
export async function nonFiniteWeight(model: SequenceModel): Promise<NonFinite | null> {
  for (const [name, v] of model.parameters()) {
    const bad = firstNonFinite(name, await v.data());
    if (bad) return bad;
  }
  return null;
}
