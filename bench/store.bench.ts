/**
 * `npm run bench:store`: upload and streamed download of one large artifact through the file store
 * and through the S3 store (s3rver from the devDependencies, started here over a temporary
 * directory), side by side in one process: MiB/s each way and how much the download grew the RSS.
 * `--mib N` sets the size (default 256).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { NO_PUBLISHED_SETS, openArtifactStore, type ArtifactStore } from '@relu-lstm/jobs';
import { intArg } from './runner/args';
import { table } from './runner/report';
import { withS3rver } from './runner/s3rver';

const BUCKET = 'relu-lstm-bench';

/** Seconds to put `data`, seconds to stream it back, and the peak RSS growth while streaming (MiB). */
async function measure(store: ArtifactStore, data: Buffer): Promise<{ up: number; down: number; rss: number }> {
  const job = randomUUID();
  let t = process.hrtime.bigint();
  await store.put(job, 'model.safetensors', data);
  const up = Number(process.hrtime.bigint() - t) / 1e9;
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  let bytes = 0;
  t = process.hrtime.bigint();
  const { stream } = await store.open(job, 'model.safetensors');
  for await (const c of stream) {
    bytes += (c as Buffer).length;
    if (gc && bytes % (16 * 2 ** 20) < (c as Buffer).length) gc();
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const down = Number(process.hrtime.bigint() - t) / 1e9;
  if (bytes !== data.length) throw new Error(`read ${bytes} bytes of ${data.length}`);
  await store.remove(job);
  return { up, down, rss: (peak - before) / 2 ** 20 };
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--mib');
  const mib = at < 0 ? 256 : intArg('--mib', process.argv[at + 1], 1);
  await withS3rver(BUCKET, async (s3rver, dir) => {
    const data = Buffer.alloc(mib * 2 ** 20, 7);
    const rows: string[][] = [];
    const stores: Array<[string, ArtifactStore]> = [
      ['file', openArtifactStore(join(dir, 'files'), { published: NO_PUBLISHED_SETS })],
      ['s3 (s3rver)', openArtifactStore(`s3://${BUCKET}/bench`, { published: NO_PUBLISHED_SETS, env: s3rver.env })],
    ];
    for (const [name, store] of stores) {
      const r = await measure(store, data);
      rows.push([name, `${mib}`, (mib / r.up).toFixed(0), (mib / r.down).toFixed(0), r.rss.toFixed(1)]);
    }
    console.log(table([['store', 'MiB', 'put MiB/s', 'streamed get MiB/s', 'get RSS growth MiB'], ...rows]));
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
