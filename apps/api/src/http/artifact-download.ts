/**
 * Streaming one file of the artifact store to a response (a job's artifact, a model version's
 * file): 400 for a name that is no artifact name, 404 when it is not stored, else the bytes with
 * their size, type and a download name.
 */
import type { Response } from 'express';
import { ArtifactNotFoundError, isValidArtifactName, type ArtifactStore } from '@relu-lstm/jobs';
import { ApiError } from './errors';

const CONTENT_TYPES: Record<string, string> = {
  json: 'application/json',
  csv: 'text/csv; charset=utf-8',
  txt: 'text/plain; charset=utf-8',
};

export function checkArtifactNameParam(name: string): void {
  if (isValidArtifactName(name)) return;
  throw ApiError.invalid([
    {
      path: 'name',
      code: 'invalid_format',
      message: 'not an artifact name',
      expected: 'one file name of letters, digits, ".", "-", "_"',
      received: JSON.stringify(name),
    },
  ]);
}

/** Sends `name` of `storeId`; `owner` names what it belongs to in a 404 (`job <id>`, `model m@2`). */
export async function sendArtifact(
  res: Response,
  o: { store: ArtifactStore; storeId: string; name: string; owner: string },
): Promise<void> {
  checkArtifactNameParam(o.name);
  let opened;
  try {
    opened = await o.store.open(o.storeId, o.name);
  } catch (e) {
    if (e instanceof ArtifactNotFoundError) throw ApiError.notFound(`artifact ${o.name} of ${o.owner}`);
    throw e;
  }
  const ext = o.name.split('.').pop() ?? '';
  res.writeHead(200, {
    'Content-Type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
    'Content-Length': String(opened.info.size),
    'Content-Disposition': `attachment; filename="${o.name}"`,
    'Last-Modified': new Date(opened.info.modifiedAt).toUTCString(),
  });
  const stream = opened.stream as NodeJS.ReadableStream & { destroy(): void };
  res.on('close', () => stream.destroy());
  await new Promise<void>((resolve) => {
    stream.on('error', () => {
      res.destroy();
      resolve();
    });
    stream.on('end', resolve);
    stream.pipe(res);
  });
}
