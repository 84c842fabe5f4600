// Builds the dashboard (apps/api/ui) into apps/api/dist/ui: one JS bundle and one CSS file (uPlot's
// styles included) with esbuild, and index.html naming them with a content hash so they can be cached
// for good. Run by the root `npm run build` after tsc (which type-checks the page, apps/api/ui/tsconfig.json).
// The contract's enums and the canonical job are read from the built @relu-lstm/jobs and compiled in,
// so the page states them nowhere itself.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, '..', 'ui');
const out = join(here, '..', 'dist', 'ui');

const jobs = require('@relu-lstm/jobs');
const lstm = require('@relu-lstm/lstm/config');
const contract = {
  jobStates: jobs.JOB_STATES,
  terminalStates: jobs.TERMINAL_STATES,
  devices: jobs.DEVICES,
  syntheticKinds: jobs.SYNTHETIC_KINDS,
  activations: lstm.ACTIVATIONS,
  optimizers: lstm.OPTIMIZER_NAMES,
  losses: lstm.LOSS_NAMES,
  canonicalTrain: jobs.CANONICAL_TRAIN_EXAMPLE,
  divergenceRollback: jobs.DIVERGENCE_ROLLBACK,
  artifacts: jobs.ARTIFACTS,
  sweepMetrics: Object.keys(jobs.SWEEP_METRICS),
  jobPriority: jobs.JOB_PRIORITY,
};

const started = Date.now();
await rm(out, { recursive: true, force: true });
await mkdir(out, { recursive: true });
const result = await build({
  entryPoints: { app: join(src, 'main.ts') },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  outdir: out,
  define: { __CONTRACT__: JSON.stringify(contract) },
  legalComments: 'eof',
  metafile: true,
  logLevel: 'warning',
});

const hash = (buf) => createHash('sha256').update(buf).digest('hex').slice(0, 12);
const js = await readFile(join(out, 'app.js'));
const css = await readFile(join(out, 'app.css'));
const html = (await readFile(join(src, 'index.html'), 'utf8'))
  .replace('{{APP_JS}}', `/ui/app.js?v=${hash(js)}`)
  .replace('{{APP_CSS}}', `/ui/app.css?v=${hash(css)}`);
await writeFile(join(out, 'index.html'), html);
const bytes = js.length + css.length + Buffer.byteLength(html);
console.log(
  `dashboard: ${out} (index.html ${Buffer.byteLength(html)} B, app.js ${js.length} B, app.css ${css.length} B; ${bytes} B) in ${Date.now() - started} ms${result.warnings.length ? `, ${result.warnings.length} warnings` : ''}`,
);
