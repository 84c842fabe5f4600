import type { ReluLstmConfig } from './config';
import { parameterShapes } from './config';
import { Rng } from './rng';

/**
 * Initial weights as plain arrays, in PyTorch's parameter order: every entry uniform(-k, k) with
 * k = 1/sqrt(hiddenSize), as `torch.nn.LSTM.reset_parameters` does, drawn from one seeded generator so
 * a seed always gives the same model. Options: forget-gate bias 1 (put on `bias_ih`, with `bias_hh`'s
 * forget block 0, so the effective bias is exactly 1) and orthogonal recurrent blocks.
 */
export function initialWeights(cfg: ReluLstmConfig): Map<string, { shape: number[]; data: Float32Array }> {
  const rng = new Rng(cfg.seed);
  const H = cfg.hiddenSize;
  const k = 1 / Math.sqrt(H);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, shape] of parameterShapes(cfg)) {
    const size = shape.reduce((a, b) => a * b, 1);
    let data = rng.uniformArray(size, -k, k);
    if (cfg.orthogonalRecurrent && name.startsWith('weight_hh')) {
      data = new Float32Array(size);
      for (let gate = 0; gate < 4; gate++) data.set(orthogonal(H, rng), gate * H * H);
    }
    if (cfg.forgetBias && name.startsWith('bias_')) {
      data.fill(name.startsWith('bias_ih') ? 1 : 0, H, 2 * H);
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** An n x n orthogonal matrix (row-major): Gram-Schmidt on a Gaussian matrix, signs as QR gives. */
export function orthogonal(n: number, rng: Rng): Float32Array {
  const rows: Float64Array[] = [];
  for (let i = 0; i < n; i++) {
    const v = new Float64Array(n);
    for (;;) {
      for (let j = 0; j < n; j++) v[j] = rng.normal();
      // Two passes of modified Gram-Schmidt keep the basis orthogonal in floating point.
      for (let pass = 0; pass < 2; pass++) {
        for (const r of rows) {
          let dot = 0;
          for (let j = 0; j < n; j++) dot += v[j] * r[j];
          for (let j = 0; j < n; j++) v[j] -= dot * r[j];
        }
      }
      let norm = 0;
      for (let j = 0; j < n; j++) norm += v[j] * v[j];
      norm = Math.sqrt(norm);
      if (norm > 1e-6) {
        for (let j = 0; j < n; j++) v[j] /= norm;
        break;
      }
    }
    rows.push(v);
  }
  const out = new Float32Array(n * n);
  rows.forEach((r, i) => out.set(r, i * n));
  return out;
}
