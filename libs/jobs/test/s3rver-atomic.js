/**
 * Starts s3rver (the same options as its command line: --directory, --address, --port, --silent;
 * --bucket NAME creates a bucket)
 * with one S3 guarantee it lacks and the S3 stores rely on: S3 replaces an object whole, so a
 * reader gets the old or the new version, never a mix. s3rver writes an object's file in place
 * (and its size and metadata beside it), so here the operations on one key take turns: a GET holds
 * its key until its body is sent, a PUT, copy or delete until it is done. Prints
 * `S3rver listening on ADDRESS:PORT` like s3rver's own command.
 */
'use strict';
const S3rver = require('s3rver');
const FilesystemStore = require('s3rver/lib/stores/filesystem');

/** key -> the end of the last operation queued on it. */
const turns = new Map();

/** Runs `fn(release)` once every earlier operation on `keys` has released them. */
async function inTurn(keys, fn) {
  const before = keys.map((k) => turns.get(k) ?? Promise.resolve());
  let release;
  const done = new Promise((resolve) => (release = resolve));
  for (const k of keys) turns.set(k, done);
  await Promise.all(before);
  done.then(() => keys.forEach((k) => turns.get(k) === done && turns.delete(k)));
  return fn(release);
}

const original = { ...Object.getOwnPropertyDescriptors(FilesystemStore.prototype) };
const call = (name, self, args) => original[name].value.apply(self, args);
const at = (bucket, key) => `${bucket}/${key}`;

Object.assign(FilesystemStore.prototype, {
  getObject(bucket, key, options) {
    return inTurn([at(bucket, key)], async (release) => {
      try {
        const object = await call('getObject', this, [bucket, key, options]);
        if (object && object.content) object.content.once('close', release);
        else release();
        return object;
      } catch (e) {
        release();
        throw e;
      }
    });
  },
  putObject(object) {
    return inTurn([at(object.bucket, object.key)], (release) => call('putObject', this, [object]).finally(release));
  },
  copyObject(srcBucket, srcKey, destBucket, destKey, metadata) {
    const keys = [...new Set([at(srcBucket, srcKey), at(destBucket, destKey)])].sort();
    return inTurn(keys, (release) =>
      call('copyObject', this, [srcBucket, srcKey, destBucket, destKey, metadata]).finally(release),
    );
  },
  deleteObject(bucket, key) {
    return inTurn([at(bucket, key)], (release) => call('deleteObject', this, [bucket, key]).finally(release));
  },
});

const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};

new S3rver({
  directory: arg('--directory'),
  address: arg('--address'),
  port: Number(arg('--port') ?? 0),
  silent: process.argv.includes('--silent'),
  configureBuckets: arg('--bucket') ? [{ name: arg('--bucket'), configs: [] }] : [],
})
  .run()
  .then(({ address, port }) => console.log('S3rver listening on %s:%d', address, port))
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
