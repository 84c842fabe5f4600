import { LstmConfigError } from '../src/errors';
import { addingProblem, sineForecast, toNestedArray } from '../src/synthetic';

describe('sineForecast', () => {
  test('shapes, next-step targets and determinism', () => {
    const a = sineForecast({ samples: 5, seqLen: 12, seed: 7 });
    expect(a.x.shape).toEqual([5, 12, 1]);
    expect(a.y.shape).toEqual([5, 12, 1]);
    expect(a.head).toBe('manyToMany');
    // y_t is x_{t+1}: the target of every step but the last is the next input.
    for (let n = 0; n < 5; n++) {
      for (let t = 0; t < 11; t++) expect(a.y.data[n * 12 + t]).toBe(a.x.data[n * 12 + t + 1]);
    }
    const b = sineForecast({ samples: 5, seqLen: 12, seed: 7 });
    expect(Buffer.from(b.x.data.buffer).equals(Buffer.from(a.x.data.buffer))).toBe(true);
    expect(Buffer.from(b.y.data.buffer).equals(Buffer.from(a.y.data.buffer))).toBe(true);
    const c = sineForecast({ samples: 5, seqLen: 12, seed: 8 });
    expect(Array.from(c.x.data)).not.toEqual(Array.from(a.x.data));
  });

  test('amplitude and noise options are honoured; trivialMse is the variance of y', () => {
    const clean = sineForecast({ samples: 200, seqLen: 30, seed: 1, noise: 0, minAmplitude: 1, maxAmplitude: 1 });
    expect(Math.max(...clean.x.data.map(Math.abs))).toBeLessThanOrEqual(1 + 1e-6);
    // A unit sine over random phases has variance 1/2.
    expect(clean.trivialMse).toBeGreaterThan(0.45);
    expect(clean.trivialMse).toBeLessThan(0.55);
  });

  test('rejects bad options with the field named', () => {
    expect(() => sineForecast({ samples: 0, seqLen: 5, seed: 1 })).toThrow(LstmConfigError);
    expect(() => sineForecast({ samples: 0, seqLen: 5, seed: 1 })).toThrow(
      /samples: expected a positive integer, got 0/,
    );
    expect(() => sineForecast({ samples: 2, seqLen: 5, seed: 1.5 })).toThrow(/seed/);
    expect(() => sineForecast({ samples: 2, seqLen: 5, seed: 1, noise: -1 })).toThrow(/noise/);
    expect(() => sineForecast({ samples: 2, seqLen: 5, seed: 1, minPeriod: 10, maxPeriod: 5 })).toThrow(/maxPeriod/);
  });
});

describe('addingProblem', () => {
  test('two markers, one per half, and the target is the sum of the marked values', () => {
    const T = 10;
    const d = addingProblem({ samples: 50, seqLen: T, seed: 3 });
    expect(d.x.shape).toEqual([50, T, 2]);
    expect(d.y.shape).toEqual([50, 1]);
    expect(d.head).toBe('lastStep');
    for (let n = 0; n < 50; n++) {
      const marked: number[] = [];
      let sum = 0;
      for (let t = 0; t < T; t++) {
        const v = d.x.data[(n * T + t) * 2];
        const m = d.x.data[(n * T + t) * 2 + 1];
        expect(v).toBeGreaterThanOrEqual(0);
        expect(v).toBeLessThan(1);
        expect([0, 1]).toContain(m);
        if (m === 1) {
          marked.push(t);
          sum += v;
        }
      }
      expect(marked.length).toBe(2);
      expect(marked[0]).toBeLessThan(T / 2);
      expect(marked[1]).toBeGreaterThanOrEqual(T / 2);
      expect(d.y.data[n]).toBeCloseTo(sum, 6);
    }
  });

  test('the mean predictor scores about 1/6 on a large sample; seeded', () => {
    const d = addingProblem({ samples: 4000, seqLen: 4, seed: 11 });
    expect(d.trivialMse).toBeGreaterThan(0.15);
    expect(d.trivialMse).toBeLessThan(0.183);
    expect(Array.from(addingProblem({ samples: 3, seqLen: 4, seed: 11 }).x.data)).toEqual(
      Array.from(d.x.data.subarray(0, 24)),
    );
    expect(() => addingProblem({ samples: 3, seqLen: 1, seed: 1 })).toThrow(/seqLen: expected an integer >= 2/);
  });
});

test('toNestedArray mirrors the shape', () => {
  const nested = toNestedArray({ data: Float32Array.from([1, 2, 3, 4, 5, 6]), shape: [1, 3, 2] });
  expect(nested).toEqual([
    [
      [1, 2],
      [3, 4],
      [5, 6],
    ],
  ]);
});
