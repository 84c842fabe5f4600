/** Option values shared by the benchmarks' command lines, with errors naming the flag. */

export function intArg(flag: string, v: string | undefined, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min)
    throw new Error(`${flag}: expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  return n;
}

/** `--header 'name: value'` into `headers` (lower-cased name). */
export function addHeaderArg(headers: Record<string, string>, v: string | undefined): void {
  const m = /^([^:]+):\s*(.*)$/.exec(v ?? '');
  if (!m) throw new Error(`--header: expected 'name: value', got ${JSON.stringify(v)}`);
  headers[m[1].trim().toLowerCase()] = m[2];
}
