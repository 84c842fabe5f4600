/**
 * The model registry: the tenant's models (GET /v1/models, newest first), and one model's aliases
 * and versions with their metrics, source job and files (downloaded with the key, as blobs).
 */
import type { ModelList, ModelVersionView, ModelView } from '@relu-lstm/jobs';
import { download, getJson } from './api';
import { every, showError, type Page } from './banner';
import { ago, fill, h, num, time } from './dom';

const PAGE_SIZE = 50;

const aliasesText = (aliases: Record<string, number>): string =>
  Object.entries(aliases)
    .map(([a, v]) => `${a} → ${v}`)
    .join(', ') || '—';

export const modelsPage: Page = (main) => {
  const body = h('tbody');
  main.append(
    h('h1', {}, 'Models'),
    h(
      'table',
      { id: 'models' },
      h(
        'thead',
        {},
        h('tr', {}, ...['name', 'latest version', 'versions', 'aliases', 'age'].map((c) => h('th', {}, c))),
      ),
      body,
    ),
  );
  return every(5000, async () => {
    const { items } = await getJson<ModelList>(`/v1/models?limit=${PAGE_SIZE}`);
    fill(
      body,
      ...items.map((m) =>
        h(
          'tr',
          { 'data-name': m.name },
          h('td', {}, h('a', { href: `#/models/${encodeURIComponent(m.name)}` }, m.name)),
          h('td', { class: 'num' }, m.latestVersion),
          h('td', { class: 'num' }, m.versionCount),
          h('td', {}, aliasesText(m.aliases)),
          h('td', { class: 'num', title: new Date(m.createdAt).toISOString() }, ago(m.createdAt)),
        ),
      ),
    );
    if (!items.length) fill(body, h('tr', {}, h('td', { colspan: 5, class: 'empty' }, 'no registered models')));
  });
};

function fileButtons(v: ModelVersionView): HTMLElement[] {
  return v.files.map((f) =>
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        'data-file': f.name,
        title: `${f.size.toLocaleString()} B`,
        onclick: () => void download(f.url, `${v.name}-v${v.version}-${f.name}`).catch(showError),
      },
      f.name,
    ),
  );
}

function versionRow(v: ModelVersionView): HTMLTableRowElement {
  const tags = Object.entries(v.tags ?? {}).map(([k, val]) => h('span', { class: 'tag' }, `${k}:${val}`));
  return h(
    'tr',
    { 'data-version': v.version },
    h('td', { class: 'num' }, v.version),
    h('td', {}, v.aliases.join(', ') || '—'),
    h('td', { class: 'num' }, num(v.metrics?.finalLoss)),
    h('td', { class: 'num' }, num(v.metrics?.finalValLoss)),
    h('td', {}, `${v.model.inputSize} → ${v.model.hiddenSize}×${v.model.numLayers} → ${v.model.outputSize}`),
    h('td', {}, h('a', { href: `#/jobs/${v.jobId}`, class: 'mono' }, v.jobId.slice(0, 8))),
    h('td', {}, v.description ?? '', ...tags),
    h('td', { class: 'num' }, time(v.createdAt)),
    h('td', { class: 'files' }, ...fileButtons(v)),
  );
}

export const modelPage: Page = (main, name) => {
  const modelName = name ?? '';
  const info = h('p', { id: 'model-aliases' });
  const body = h('tbody');
  main.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Model ', h('span', { class: 'mono' }, modelName))),
    info,
    h(
      'table',
      { id: 'versions' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['version', 'aliases', 'final loss', 'final val loss', 'model', 'job', 'notes', 'created', 'files'].map(
            (c) => h('th', {}, c),
          ),
        ),
      ),
      body,
    ),
  );
  return every(5000, async () => {
    const m = await getJson<ModelView>(`/v1/models/${encodeURIComponent(modelName)}`);
    fill(
      info,
      `latest version ${m.latestVersion}; aliases: ${aliasesText(m.aliases)}; reference `,
      h('code', {}, m.name),
    );
    fill(body, ...[...m.versions].reverse().map(versionRow));
  });
};
