/**
 * Shape checks for nested number arrays (JSON tensors). zod checks the element types; these check
 * that an array is rectangular and has the sizes the rest of the payload implies, and report the
 * first place where it does not, as a path into the payload.
 */
export type Path = Array<string | number>;

/** Largest finite float32: the worker computes in float32, so every number of a tensor must fit. */
export const FLOAT32_MAX = 3.4028234663852886e38;
export const FLOAT32_EXPECTED = `a finite number with |v| <= ${FLOAT32_MAX} (float32)`;
export const fitsFloat32 = (v: number): boolean => Math.abs(v) <= FLOAT32_MAX;

export type ShapeResult = { ok: true; shape: number[] } | { ok: false; path: Path; expected: string; received: string };

/**
 * Shape of a rectangular nested array of numbers, or the first element that breaks it. The shape is
 * read along the first element of every level; every other element must match it.
 */
export function rectangularShape(value: unknown, path: Path = []): ShapeResult {
  const shape: number[] = [];
  let cur: unknown = value;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    if (cur.length === 0) break;
    cur = cur[0];
  }
  const bad = walk(value, shape, 0, path);
  return bad ?? { ok: true, shape };
}

function walk(v: unknown, shape: number[], depth: number, path: Path): ShapeResult | null {
  if (depth === shape.length) {
    if (typeof v !== 'number') return { ok: false, path, expected: 'a number', received: kind(v) };
    if (!fitsFloat32(v)) return { ok: false, path, expected: FLOAT32_EXPECTED, received: String(v) };
    return null;
  }
  if (!Array.isArray(v)) {
    return { ok: false, path, expected: `an array of length ${shape[depth]}`, received: kind(v) };
  }
  if (v.length !== shape[depth]) {
    return { ok: false, path, expected: `an array of length ${shape[depth]}`, received: `length ${v.length}` };
  }
  if (depth + 1 === shape.length) {
    for (let i = 0; i < v.length; i++) {
      if (typeof v[i] !== 'number')
        return { ok: false, path: [...path, i], expected: 'a number', received: kind(v[i]) };
      if (!fitsFloat32(v[i] as number))
        return { ok: false, path: [...path, i], expected: FLOAT32_EXPECTED, received: String(v[i]) };
    }
    return null;
  }
  for (let i = 0; i < v.length; i++) {
    const bad = walk(v[i], shape, depth + 1, [...path, i]);
    if (bad) return bad;
  }
  return null;
}

function kind(v: unknown): string {
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (v === null) return 'null';
  return typeof v;
}

/** `[2, 3, 4]` -> `"[2, 3, 4]"`; unknown sizes as names: `[N, T, 4]`. */
export function showShape(dims: Array<number | string>): string {
  return `[${dims.join(', ')}]`;
}

/** Number of elements of a shape. */
export function numel(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
