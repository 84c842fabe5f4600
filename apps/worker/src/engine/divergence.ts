/**
 * The divergence guard's pure parts. A ReLU-LSTM's activations are unbounded, so a learning rate
 * that is too high can blow a training up (the library's `fit` throws `DivergenceError` on a
 * non-finite loss or gradient norm, before the bad update). The engine then rolls the run back to
 * its last good state with a smaller learning rate, up to `DIVERGENCE_RETRIES` times within the
 * same attempt; these helpers build the state to roll back to and the final job error.
 */
import type { DivergenceError, TrainingState } from '@relu-lstm/lstm';
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
  const after = rollbacks > 0 ? ` (after ${rollbacks} rollback${rollbacks === 1 ? '' : 's'}, learning rate ${learningRate})` : '';
  return {
    code: 'diverged',
    message: `${e.message}${after}`,
    retryable: false,
    details: { epoch: e.epoch, step: e.step, quantity: e.quantity, value: String(e.value), rollbacks, learningRate },
  };
}
