/**
 * The PyTorch reference fixtures on webgpu, for a GPU host without jest (scripts/gpu-check/run.sh):
 * every fixture on the generic loop, and on the default loop too when that is another one for webgpu;
 * forward <= 1e-5, gradients <= 1e-4 (relative), loss <= 1e-5, tensor counts flat, the same bounds
 * as libs/lstm/test/reference.test.ts and the same measure (its helper).
 *
 *   node check-fixtures.js [--allow-software]
 *
 * Exits 1 when a fixture fails, and when the adapter is not hardware unless --allow-software (a
 * lavapipe round trip of the pack).
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../libs/lstm/src/backend';
import { type LstmKernelPathChoice, lstmKernelPath, setLstmKernelPath } from '../../libs/lstm/src/kernel-path';
import { type Fixture, loadFixtures, measureFixture } from '../../libs/lstm/test/helpers/fixtures';

const FORWARD_TOL = 1e-5;
const GRADIENT_TOL = 1e-4;
const LOSS_TOL = 1e-5;

interface Row {
  loop: string;
  file: string;
  forward: number;
  gradient: number;
  loss: number;
  leaked: number;
  ok: boolean;
}

async function checkOne(loop: string, fx: Fixture): Promise<Row> {
  const before = tf.memory().numTensors;
  const { errors, gradErrors, lossErr } = await measureFixture(fx);
  const forward = Math.max(...Object.values(errors));
  const gradient = Math.max(...Object.values(gradErrors));
  const leaked = tf.memory().numTensors - before;
  const ok = forward <= FORWARD_TOL && gradient <= GRADIENT_TOL && lossErr <= LOSS_TOL && leaked === 0;
  return { loop, file: fx.file, forward, gradient, loss: lossErr, leaked, ok };
}

/** The loops to check: generic always; the default one as well when it differs on webgpu. */
function loops(): Array<{ name: string; choice: LstmKernelPathChoice }> {
  const auto = lstmKernelPath('webgpu');
  const out: Array<{ name: string; choice: LstmKernelPathChoice }> = [{ name: 'generic', choice: 'generic' }];
  if (auto !== 'generic') out.push({ name: auto, choice: 'auto' });
  return out;
}

function print(rows: Row[]): void {
  const e = (v: number) => v.toExponential(2);
  console.log('| loop | fixture | forward | gradient | loss | tensors left | |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    console.log(
      `| ${r.loop} | ${r.file} | ${e(r.forward)} | ${e(r.gradient)} | ${e(r.loss)} | ${r.leaked} | ${r.ok ? 'ok' : 'FAIL'} |`,
    );
  }
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { 'allow-software': { type: 'boolean', default: false } } });
  const info = await initBackend('webgpu');
  console.log(`backend: ${info.backend}; device: ${info.device}; gpu: ${info.gpu}`);
  const rows: Row[] = [];
  for (const loop of loops()) {
    setLstmKernelPath(loop.choice);
    for (const fx of loadFixtures()) rows.push(await checkOne(loop.name, fx));
  }
  setLstmKernelPath('auto');
  print(rows);
  const failed = rows.filter((r) => !r.ok);
  const worst = (k: 'forward' | 'gradient') => Math.max(...rows.map((r) => r[k])).toExponential(2);
  console.log(
    `fixtures: ${rows.length - failed.length}/${rows.length} ok; max forward error ${worst('forward')} ` +
      `(<= ${FORWARD_TOL}), max gradient error ${worst('gradient')} (<= ${GRADIENT_TOL})`,
  );
  if (!info.gpu && !values['allow-software']) {
    console.log(`FAIL: the adapter is not hardware (${info.device}); --allow-software accepts it`);
    return 1;
  }
  return failed.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
