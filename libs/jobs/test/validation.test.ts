// Unit test of validate(): values nested deeper than zod's recursion can walk are bad input, not a throw.
import { z } from 'zod';
import { validate } from '@relu-lstm/jobs';

describe('validate on values nested past the call stack', () => {
  // A recursive schema walks as deep as the value goes; 200 000 levels overflow the stack inside
  // zod, which validate reports as an issue instead of throwing.
  type Nested = number | Nested[];
  const NestedSchema: z.ZodType<Nested> = z.lazy(() => z.union([z.number(), z.array(NestedSchema)]));
  const deep = (n: number): Nested => {
    let v: Nested = 1;
    for (let i = 0; i < n; i++) v = [v];
    return v;
  };

  it('returns a too_deep issue on the whole value', () => {
    expect(() => NestedSchema.safeParse(deep(200_000))).toThrow(RangeError); // what validate guards against
    const r = validate(NestedSchema, deep(200_000));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.issues).toEqual([expect.objectContaining({ path: '', code: 'too_deep' })]);
  });

  it('still validates shallow values as before', () => {
    expect(validate(NestedSchema, deep(3))).toEqual({ ok: true, value: [[[1]]] });
  });
});
