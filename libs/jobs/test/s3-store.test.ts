// The S3 stores against a real S3 server process (s3rver, see s3-server.ts): the artifact and
// dataset contracts, a large multipart object streamed back in bounded memory (in a child process,
// whose RSS says what the download held), a missing bucket, wrong credentials, the server killed
// mid-upload, and retention removing a job's objects (with the real Redis).
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { HeadObjectCommand, PutObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { Redis } from 'ioredis';
import {
  NO_PUBLISHED_SETS,
  openArtifactStore,
  openDatasetStore,
  redisKeys,
  storeLocation,
  sweepRetention,
  type ArtifactStore,
  type PublishedSets,
} from '@relu-lstm/jobs';
import { S3ArtifactStore } from '../src/s3-store';
import { describeArtifactStoreContract } from './artifact-store-contract';
import { describeDatasetStoreContract } from './dataset-store-contract';
import { S3Server } from './s3-server';

const BUCKET = 'relu-lstm-test';
let server: S3Server;
let client: S3Client;

/** Each opener of this file starts the one server (the contracts open theirs in their beforeAll). */
let starting: Promise<void> | null = null;
function ensureServer(): Promise<void> {
  starting ??= (async () => {
    server = await S3Server.start();
    await server.createBucket(BUCKET);
    client = server.client();
  })();
  return starting;
}
afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

async function countObjects(prefix: string): Promise<number> {
  let n = 0;
  for await (const page of paginateListObjectsV2({ client }, { Bucket: BUCKET, Prefix: prefix })) {
    n += page.Contents?.length ?? 0;
  }
  return n;
}

/** A store under a new prefix of the test bucket. */
async function artifactStore(
  published: PublishedSets = NO_PUBLISHED_SETS,
): Promise<{ store: ArtifactStore; prefix: string }> {
  await ensureServer();
  const prefix = `artifacts-${randomUUID()}`;
  return { store: openArtifactStore(`s3://${BUCKET}/${prefix}`, { published, env: server.env() }), prefix };
}

describeArtifactStoreContract('s3', async (published) => {
  const { store, prefix } = await artifactStore(published);
  return {
    store,
    raw: {
      // A writer killed between uploading a fenced put's temporary and copying it into place.
      leaveKilledPut: async (jobId, name) => {
        const Key = `${prefix}/${jobId}/.${name}.0123456789ab.tmp`;
        await client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'half' }));
      },
      objects: (jobId) => countObjects(`${prefix}/${jobId}/`),
    },
    close: () => Promise.resolve(),
  };
});

describeDatasetStoreContract('s3', async () => {
  await ensureServer();
  const prefix = `datasets-${randomUUID()}`;
  return {
    store: openDatasetStore(`s3://${BUCKET}/${prefix}/`, server.env()),
    raw: { objects: () => countObjects(`${prefix}/`) },
    close: () => Promise.resolve(),
  };
});

describe('S3 store locations', () => {
  test('s3://bucket/prefix in a normal form; a bad bucket or prefix is refused', () => {
    expect(storeLocation('S3://my-bucket/a/b/')).toBe('s3://my-bucket/a/b');
    expect(storeLocation('s3://my-bucket')).toBe('s3://my-bucket');
    expect(() => storeLocation('s3://B_/x')).toThrow(/expected s3:\/\/bucket\/prefix with a bucket name/);
    expect(() => storeLocation('s3://bucket/a//b')).toThrow(/prefix of non-empty segments/);
    expect(() =>
      openArtifactStore('s3://bucket/x', { published: NO_PUBLISHED_SETS, env: { S3_ENDPOINT: 'ftp://x' } }),
    ).toThrow(/S3_ENDPOINT: expected an http:\/\/ or https:\/\/ URL/);
  });
});

describe('S3 store against a real server', () => {
  beforeAll(() => ensureServer());

  test('a 64 MiB artifact: multipart upload, streamed download in bounded memory', async () => {
    const prefix = `artifacts-${randomUUID()}`;
    const counted = server.client();
    const commands: string[] = [];
    counted.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(context.commandName as string);
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new S3ArtifactStore(counted, `s3://${BUCKET}/${prefix}`, NO_PUBLISHED_SETS);
    const job = randomUUID();
    const size = 64 * 1024 * 1024;
    const big = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) big.writeUInt32LE(i, i);
    const sha = createHash('sha256').update(big).digest('hex');
    await store.put(job, 'model.safetensors', big);
    const head = await client.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${job}/model.safetensors` }),
    );
    expect(head.ContentLength).toBe(size);
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(8); // 8 MiB parts
    expect(commands).toContain('CompleteMultipartUploadCommand');
    counted.destroy();

    const got = await downloadInChild({ location: `s3://${BUCKET}/${prefix}`, job, name: 'model.safetensors' });
    expect(got.sha).toBe(sha);
    expect(got.bytes).toBe(size);
    // Holding the object would add its 64 MiB; streaming holds a few chunks.
    expect(got.rssGrowthMiB).toBeLessThan(24);
    console.log(`S3 download of 64 MiB in a child process: RSS grew ${got.rssGrowthMiB.toFixed(1)} MiB`);
  });

  test('a missing bucket: every operation fails naming the bucket', async () => {
    const store = openArtifactStore('s3://no-such-bucket/x', { published: NO_PUBLISHED_SETS, env: server.env() });
    const datasets = openDatasetStore('s3://no-such-bucket/x', server.env());
    const job = randomUUID();
    const missing = /S3 bucket "no-such-bucket" does not exist/;
    await expect(store.put(job, 'config.json', '{}')).rejects.toThrow(missing);
    await expect(store.get(job, 'config.json')).rejects.toThrow(missing);
    await expect(store.list(job)).rejects.toThrow(missing);
    await expect(datasets.put(randomUUID(), { x: [[[1]]], y: [[1]] })).rejects.toThrow(missing);
  });

  test('wrong credentials: a clear refusal naming the bucket and the variables to check', async () => {
    const env = server.env({ AWS_ACCESS_KEY_ID: 'nobody', AWS_SECRET_ACCESS_KEY: 'wrong' });
    const store = openArtifactStore(`s3://${BUCKET}/creds`, { published: NO_PUBLISHED_SETS, env });
    const refused = new RegExp(
      `S3 refused access to bucket "${BUCKET}".*check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    );
    await expect(store.put(randomUUID(), 'config.json', '{}')).rejects.toThrow(refused);
    await expect(store.exists(randomUUID(), 'config.json')).rejects.toThrow(refused);
    await expect(openDatasetStore(`s3://${BUCKET}/creds`, env).get(randomUUID())).rejects.toThrow(refused);
  });

  test("retention removes a job's objects (artifacts, stages, leftovers), and only a dead job's", async () => {
    const { store, prefix } = await artifactStore();
    const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
    const keys = redisKeys(`test-s3ret-${randomUUID()}`);
    const [dead, alive] = [randomUUID(), randomUUID()];
    try {
      for (const id of [dead, alive]) {
        await store.put(id, 'model.safetensors', 'm');
        await store.stage(id, 'pending', 'config.json', '{}');
      }
      await redis.set(keys.jobMeta(alive), '{}', 'PX', 60_000);
      const report = await sweepRetention({
        redis,
        keys,
        removeQueueJob: () => Promise.resolve(),
        artifacts: store,
        orphanGraceMs: 60_000,
        now: () => Date.now() + 120_000,
      });
      expect(report.orphanArtifacts).toBe(1);
      expect(await countObjects(`${prefix}/${dead}/`)).toBe(0);
      expect(await countObjects(`${prefix}/${alive}/`)).toBe(2);
    } finally {
      await redis.del(keys.jobMeta(alive));
      await redis.quit();
    }
  });
});

describe('S3 server down mid-upload', () => {
  let down: S3Server;
  beforeAll(async () => {
    down = await S3Server.start();
    await down.createBucket(BUCKET);
  });
  afterAll(() => down.stop());

  test('the put fails with a clear error and nothing is published', async () => {
    // The server is killed once the first part is in, before the second is sent.
    const client = down.client();
    let parts = 0;
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (context.commandName === 'UploadPartCommand' && ++parts === 2) await down.kill();
        return next(args);
      },
      { step: 'initialize' },
    );
    const store = new S3ArtifactStore(client, `s3://${BUCKET}/down`, NO_PUBLISHED_SETS);
    const job = randomUUID();
    let fenceAsked = false;
    const put = store.put(job, 'model.safetensors', Buffer.alloc(24 * 1024 * 1024, 1), {
      fence: () => Promise.resolve((fenceAsked = true)),
    });
    await expect(put).rejects.toThrow(
      new RegExp(`artifact model.safetensors of job ${job}: S3 bucket "${BUCKET}" failed \\(.*ECONNREFUSED`),
    );
    expect(parts).toBeGreaterThanOrEqual(2);
    expect(fenceAsked).toBe(false);
    await down.listen(); // the same port and directory
    expect(await store.exists(job, 'model.safetensors')).toBe(false);
    expect(await store.list(job)).toEqual([]);
    let objects = 0;
    for await (const page of paginateListObjectsV2({ client }, { Bucket: BUCKET, Prefix: `down/${job}/` })) {
      objects += page.Contents?.length ?? 0;
    }
    client.destroy();
    expect(objects).toBe(0);
  });
});

/**
 * Streams one artifact through the built store in a fresh node process (so freed memory of this
 * one cannot hide what the download holds): its bytes, sha256 and how much its RSS grew.
 */
async function downloadInChild(o: {
  location: string;
  job: string;
  name: string;
}): Promise<{ bytes: number; sha: string; rssGrowthMiB: number }> {
  const script = `
    const { createHash } = require('node:crypto');
    const { NO_PUBLISHED_SETS, openArtifactStore } = require('@relu-lstm/jobs');
    (async () => {
      const store = openArtifactStore(process.env.LOCATION, { published: NO_PUBLISHED_SETS });
      await store.exists(process.env.JOB, 'config.json'); // the client loaded and connected
      const before = process.memoryUsage().rss;
      let peak = before, bytes = 0;
      const hash = createHash('sha256');
      const { stream } = await store.open(process.env.JOB, process.env.NAME);
      for await (const c of stream) {
        hash.update(c);
        // Every 4 MiB collect what was read and dropped: the peak is what the download holds.
        if (Math.floor((bytes + c.length) / 2 ** 22) > Math.floor(bytes / 2 ** 22)) global.gc();
        bytes += c.length;
        peak = Math.max(peak, process.memoryUsage().rss);
      }
      process.stdout.write(JSON.stringify({ bytes, sha: hash.digest('hex'), rssGrowthMiB: (peak - before) / 2 ** 20 }));
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '-e', script], {
    env: { ...process.env, ...server.env(), LOCATION: o.location, JOB: o.job, NAME: o.name, NODE_NO_WARNINGS: '1' },
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout) as { bytes: number; sha: string; rssGrowthMiB: number };
}
