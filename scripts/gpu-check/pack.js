#!/usr/bin/env node
/**
 * Packs what a GPU host without Node and without network needs to run the reference fixtures and the
 * bench on webgpu (scripts/gpu-check/README.md):
 *
 *   npm run gpu-check:pack [-- OUT_DIR]        default OUT_DIR: .gpu-check (git-ignored)
 *
 * OUT_DIR gets node.xz (this Node binary), app.tar.xz (the compiled check and bench, the fixtures and
 * only the node_modules files they load), the libvulkan1 .deb (`apt-get download`, kept from an earlier
 * pack) and run.sh. Which node_modules files are needed is measured, not listed: the check and the
 * bench run here once under trace-modules.js, which records every module Node loaded.
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..', '..');
const LIMIT_BYTES = 60 * 1024 * 1024;

function sh(cmd, args, options = {}) {
  return execFileSync(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], ...options });
}

function build() {
  console.log('building (tsc -b tsconfig.build.json, tsc -p scripts/gpu-check)');
  sh('npx', ['tsc', '-b', 'tsconfig.build.json'], { stdio: 'inherit' });
  sh('npx', ['tsc', '-p', 'scripts/gpu-check'], { stdio: 'inherit' });
}

/** The app tree as it will be unpacked: check/ (fixture check + fixtures), bench/, node_modules/. */
function stageApp(app) {
  copyTree(path.join(ROOT, 'scripts/gpu-check/dist'), path.join(app, 'check'));
  const fixtures = path.join(app, 'check/libs/lstm/test/fixtures');
  copyTree(path.join(ROOT, 'libs/lstm/test/fixtures'), fixtures, (f) => f.endsWith('.json') || isDir(f));
  copyTree(
    path.join(ROOT, 'bench/dist'),
    path.join(app, 'bench/dist'),
    (f) => !f.endsWith('.map') && !f.endsWith('.d.ts'),
  );
  for (const f of fs.readdirSync(path.join(ROOT, 'bench')).filter((n) => n.endsWith('.py'))) {
    fs.copyFileSync(path.join(ROOT, 'bench', f), path.join(app, 'bench', f));
  }
}

/** Runs the staged check and bench here (on any adapter) and returns every file they loaded. */
function traceModules(app) {
  const trace = path.join(os.tmpdir(), `gpu-check-trace-${process.pid}.txt`);
  fs.rmSync(trace, { force: true });
  // The staged app has no node_modules yet: it resolves them from the repository's (NODE_PATH).
  const env = {
    ...process.env,
    GPU_CHECK_TRACE: trace,
    RELU_LSTM_BACKEND: 'webgpu',
    NODE_PATH: path.join(ROOT, 'node_modules'),
  };
  const hook = ['--require', path.join(__dirname, 'trace-modules.js')];
  // The check loads the library, tfjs and Dawn; the bench's imports load tfjs's umbrella and layers
  // (an unknown --config stops it right after they are loaded, before anything is timed).
  console.log('tracing the modules the check and the bench load (the check runs once here)');
  sh(process.execPath, [...hook, 'check/scripts/gpu-check/check-fixtures.js', '--allow-software'], {
    cwd: app,
    env,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  try {
    sh(process.execPath, [...hook, 'bench/dist/lstm.bench.js', '--config', 'none'], { cwd: app, env, stdio: 'pipe' });
  } catch {
    // expected: the bench refuses the config after its imports
  }
  const files = new Set(fs.readFileSync(trace, 'utf8').split('\n').filter(Boolean));
  fs.rmSync(trace, { force: true });
  return [...files];
}

/**
 * Copies the traced node_modules files (and each package's package.json) into the app. Files of the
 * workspace packages (node_modules/@relu-lstm/* link to libs/*) go under node_modules/@relu-lstm.
 */
function stageNodeModules(app, files) {
  const out = path.join(app, 'node_modules');
  let n = 0;
  for (const file of files) {
    const rel = nodeModulesPath(file);
    if (rel === null) continue;
    copyFile(file, path.join(out, rel));
    const pkg = packageRoot(rel);
    const manifest = path.join(out, pkg, 'package.json');
    if (!fs.existsSync(manifest)) copyFile(path.join(sourceOf(pkg), 'package.json'), manifest);
    n++;
  }
  console.log(`node_modules: ${n} files`);
}

const WORKSPACES = {
  'libs/lstm': '@relu-lstm/lstm',
  'libs/jobs': '@relu-lstm/jobs',
  'libs/client': '@relu-lstm/client',
};

/** The path of `file` below node_modules/ in the app, or null when it is not a dependency's file. */
function nodeModulesPath(file) {
  const rel = path.relative(ROOT, file);
  if (rel.startsWith('node_modules' + path.sep)) return rel.slice('node_modules'.length + 1);
  for (const [dir, name] of Object.entries(WORKSPACES)) {
    if (rel.startsWith(dir + path.sep)) return path.join(name, rel.slice(dir.length + 1));
  }
  return null; // the app's own files (check/, bench/) and Node's built-ins
}

/** `@scope/pkg` or `pkg` (with nested node_modules kept) for a path below node_modules. */
function packageRoot(rel) {
  const parts = rel.split(path.sep);
  let end = 0;
  for (let i = 0; i < parts.length;) {
    const len = parts[i].startsWith('@') ? 2 : 1;
    end = i + len;
    if (parts[end] !== 'node_modules') break;
    i = end + 1;
  }
  return parts.slice(0, end).join(path.sep);
}

function sourceOf(pkg) {
  for (const [dir, name] of Object.entries(WORKSPACES)) if (pkg === name) return path.join(ROOT, dir);
  return path.join(ROOT, 'node_modules', pkg);
}

/** The Debian libvulkan1 package, downloaded once (apt-get download) and reused by later packs. */
function vulkanDeb(outDir) {
  const existing = fs.readdirSync(outDir).find((f) => /^libvulkan1_.*\.deb$/.test(f));
  if (existing) return existing;
  console.log('apt-get download libvulkan1');
  sh('apt-get', ['download', 'libvulkan1'], { cwd: outDir, stdio: 'inherit' });
  return fs.readdirSync(outDir).find((f) => /^libvulkan1_.*\.deb$/.test(f));
}

function main() {
  const outDir = path.resolve(ROOT, process.argv[2] ?? '.gpu-check');
  fs.mkdirSync(outDir, { recursive: true });
  build();
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'gpu-check-'));
  try {
    const app = path.join(stage, 'app');
    stageApp(app);
    stageNodeModules(app, traceModules(app));
    console.log('xz app.tar.xz');
    sh('tar', ['-C', stage, '-cJf', path.join(outDir, 'app.tar.xz'), 'app'], {
      env: { ...process.env, XZ_OPT: '-9 -T0' },
    });
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const node = path.join(outDir, 'node.xz');
  if (!fs.existsSync(node) || fs.statSync(node).mtimeMs < fs.statSync(process.execPath).mtimeMs) {
    console.log(`xz ${process.execPath} (Node ${process.version})`);
    fs.writeFileSync(node, sh('xz', ['-9', '-T0', '-c', process.execPath], { maxBuffer: 1 << 30 }));
  }
  const deb = vulkanDeb(outDir);
  fs.copyFileSync(path.join(__dirname, 'run.sh'), path.join(outDir, 'run.sh'));
  fs.chmodSync(path.join(outDir, 'run.sh'), 0o755);
  let total = 0;
  for (const f of ['node.xz', 'app.tar.xz', deb, 'run.sh']) {
    const size = fs.statSync(path.join(outDir, f)).size;
    total += size;
    console.log(`  ${f.padEnd(40)} ${(size / 1048576).toFixed(1)} MiB`);
  }
  console.log(`${outDir}: ${(total / 1048576).toFixed(1)} MiB (limit ${LIMIT_BYTES / 1048576} MiB)`);
  if (total > LIMIT_BYTES) {
    console.error('over the limit');
    process.exit(1);
  }
  console.log(`on the GPU host: copy ${path.basename(outDir)}/ over, then: sh run.sh REPORT_DIR`);
}

function isDir(f) {
  return fs.statSync(f).isDirectory();
}

function copyFile(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true });
  fs.copyFileSync(from, to);
}

function copyTree(from, to, keep = () => true) {
  fs.cpSync(from, to, { recursive: true, filter: (f) => keep(f) });
}

main();
