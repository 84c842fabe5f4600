/**
 * The opaque cursor of the newest-first listings (jobs, datasets): base64url of `<score>:<id>` of
 * the last item returned, over a sorted set scored by creation time.
 */
import { z } from 'zod';
import { ApiError } from './errors';

/** `?limit=&cursor=` of a listing. */
export const PageQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().max(200).optional(),
});

export interface IndexEntry {
  score: number;
  id: string;
}

export const cursorOf = (e: IndexEntry): string => Buffer.from(`${e.score}:${e.id}`).toString('base64url');

/** The entry a cursor names; 400 naming `cursor` for anything this api did not hand out. */
export function parseCursor(cursor: string): IndexEntry {
  const m = /^(\d+):([A-Za-z0-9._-]+)$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!m)
    throw ApiError.invalid([
      {
        path: 'cursor',
        code: 'invalid_format',
        message: 'not a cursor from this api',
        expected: 'the nextCursor of a previous page',
        received: JSON.stringify(cursor),
      },
    ]);
  return { score: Number(m[1]), id: m[2] };
}

/** Members with the cursor's score come in descending id order: those up to the cursor were served. */
export const servedBefore = (e: IndexEntry, after: IndexEntry | null): boolean =>
  after !== null && e.score === after.score && e.id >= after.id;
