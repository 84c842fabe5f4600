/**
 * `npm run bench:download`: one large artifact downloaded through the api (a real process, started
 * per store) from the file store and from the S3 store (s3rver, started here), side by side in one
 * run: MiB/s of the download and how much it grew the api's resident set, from /proc/<pid>/status
 * (VmHWM, the peak, reset through clear_refs before the download; VmRSS sampled besides, where the
 * reset is refused). The artifact is put by this process (the api has no artifact upload). `--mib N`
 * sets the size (default 256); REDIS_URL the Redis (default redis://127.0.0.1:6379).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { RunnerClient } from '@relu-lstm/client';
import { NO_PUBLISHED_SETS, openArtifactStore } from '@relu-lstm/jobs';
import { intArg } from './runner/args';
import { tinyInferPayload } from './runner/payload';
import { table } from './runner/report';
import { withS3rver } from './runner/s3rver';
import { startStack } from './runner/stack';

const BUCKET = 'relu-lstm-bench';
const MIB = 2 ** 20;

/** A `/proc/<pid>/status` field in MiB (`VmRSS`, `VmHWM`). */
function statusMiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

/** Resets the process's peak RSS to its current RSS (Linux clear_refs 5); false where refused. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Streams `url` to nowhere; the bytes read. */
function download(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`GET ${url}: ${res.statusCode}`));
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve(bytes));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

interface Measured {
  seconds: number;
  rssBefore: number;
  /** Peak RSS growth during the download (VmHWM after reset, else the sampled VmRSS peak). */
  growth: number;
  source: 'VmHWM' | 'VmRSS samples';
}

async function measure(o: { location: string; env: Record<string, string>; data: Buffer }): Promise<Measured> {
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const stack = await startStack({
    redisUrl,
    workers: 0,
    backend: 'cpu',
    api: true,
    env: { ...o.env, ARTIFACT_DIR: o.location },
  });
  try {
    // A queued job (no worker takes it) for the api to serve the artifact of.
    const { id } = await new RunnerClient({ baseUrl: stack.apiUrl }).submitInfer(tinyInferPayload());
    await openArtifactStore(o.location, { published: NO_PUBLISHED_SETS, env: o.env }).put(
      id,
      'model.safetensors',
      o.data,
    );
    const pid = stack.pids.api!;
    const rssBefore = statusMiB(pid, 'VmRSS');
    const reset = resetPeak(pid);
    let sampled = rssBefore;
    const sampler = setInterval(() => (sampled = Math.max(sampled, statusMiB(pid, 'VmRSS'))), 10);
    const t = process.hrtime.bigint();
    const bytes = await download(`${stack.apiUrl}/v1/jobs/${id}/artifacts/model.safetensors`);
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    clearInterval(sampler);
    if (bytes !== o.data.length) throw new Error(`downloaded ${bytes} bytes of ${o.data.length}`);
    const peak = reset ? statusMiB(pid, 'VmHWM') : sampled;
    return { seconds, rssBefore, growth: peak - rssBefore, source: reset ? 'VmHWM' : 'VmRSS samples' };
  } finally {
    await stack.stop();
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--mib');
  const mib = at < 0 ? 256 : intArg('--mib', process.argv[at + 1], 1);
  await withS3rver(BUCKET, async (s3rver, dir) => {
    const data = Buffer.alloc(mib * MIB, 7);
    const stores: Array<[string, string, Record<string, string>]> = [
      ['file', join(dir, 'files'), {}],
      ['s3 (s3rver)', `s3://${BUCKET}/bench`, s3rver.env],
    ];
    const rows: string[][] = [];
    for (const [name, location, env] of stores) {
      const r = await measure({ location, env, data });
      rows.push([name, `${mib}`, (mib / r.seconds).toFixed(0), r.rssBefore.toFixed(0), r.growth.toFixed(1), r.source]);
    }
    console.log(
      table([['store', 'MiB', 'download MiB/s', 'api RSS before MiB', 'api peak RSS growth MiB', 'from'], ...rows]),
    );
  });
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
