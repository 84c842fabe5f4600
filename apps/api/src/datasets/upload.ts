/**
 * Reading a dataset upload as a stream: the body's text in chunks (decoded, counted against
 * `DATASET_BODY_LIMIT`), and the per-process cap on uploads read at once (`MAX_DATASET_UPLOADS`).
 * No body parser runs on `POST /v1/datasets`: the route reads the request itself.
 */
import type { Request } from 'express';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { ApiError } from '../http/errors';

/** The upload route, which the api's JSON body parser skips. */
export const isDatasetUpload = (req: Request): boolean => req.method === 'POST' && /^\/v1\/datasets\/?$/.test(req.path);

const tooLarge = (limit: number) =>
  new ApiError(413, 'payload_too_large', `the body is over the limit of ${limit} bytes`);

const DECODERS: Record<string, () => NodeJS.ReadWriteStream> = {
  gzip: createGunzip,
  deflate: createInflate,
  br: createBrotliDecompress,
};

/**
 * The body as UTF-8 text chunks; throws 413 past `limit` bytes (decoded), 415 for another charset
 * or an unknown Content-Encoding. Ending the iteration early discards the rest of the body.
 */
export async function* bodyText(req: Request, limit: number): AsyncGenerator<string, void, undefined> {
  if (Number(req.headers['content-length'] ?? 0) > limit) throw tooLarge(limit);
  const charset = /;\s*charset=([^;\s]+)/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset && charset !== 'utf-8' && charset !== 'utf8')
    throw new ApiError(415, 'unsupported_media_type', `unsupported charset "${charset.toUpperCase()}"`);
  const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
  const decoder = DECODERS[encoding];
  if (!decoder && encoding !== 'identity')
    throw new ApiError(415, 'unsupported_media_type', `unsupported content encoding "${encoding}"`);
  // Stopping early must not destroy the request: the answer still goes out on its socket.
  const source = decoder ? decoded(req, decoder()) : req.iterator({ destroyOnReturn: false });
  const text = new TextDecoder('utf-8');
  let bytes = 0;
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > limit) throw tooLarge(limit);
      yield text.decode(chunk, { stream: true });
    }
    const rest = text.decode();
    if (rest) yield rest;
  } finally {
    // Unread data is drained and dropped, so the response can go out on this connection.
    if (!req.readableEnded) req.resume();
  }
}

/** The body through a decompressor; a corrupt stream is a 400. */
async function* decoded(req: Request, decoder: NodeJS.ReadWriteStream): AsyncGenerator<Buffer, void, undefined> {
  try {
    yield* req.pipe(decoder) as unknown as AsyncIterable<Buffer>;
  } catch (e) {
    if (e instanceof ApiError) throw e;
    throw new ApiError(
      400,
      'invalid_request',
      `the body could not be decompressed (${req.headers['content-encoding']}): ${(e as Error).message}`,
    );
  }
}

/** A counter of uploads being read; past `max`, 503 with Retry-After. */
export class UploadSlots {
  private open = 0;

  constructor(private readonly max: number) {}

  acquire(): () => void {
    if (this.open >= this.max) {
      throw new ApiError(
        503,
        'unavailable',
        `${this.open} dataset uploads are being read, the most MAX_DATASET_UPLOADS allows; retry later`,
        undefined,
        { 'Retry-After': '5' },
      );
    }
    this.open++;
    let released = false;
    return () => {
      if (!released) this.open--;
      released = true;
    };
  }
}
