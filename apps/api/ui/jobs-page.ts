/** The jobs list: newest first, filtered by state, refreshed every 2 s. */
import type { JobList, JobView } from '@relu-lstm/jobs';
import { getJson } from './api';
import { every, type Page } from './banner';
import { CONTRACT } from './contract';
import { ago, fill, h, num } from './dom';

const REFRESH_MS = 2000;
const PAGE_SIZE = 50;

/** The job's name and `key:value` tags (the column is hidden while no job on the page has any). */
const tagsOf = (j: JobView): string[] => [
  ...(j.name !== undefined ? [j.name] : []),
  ...Object.entries(j.tags ?? {}).map(([k, v]) => `${k}:${v}`),
];

function row(j: JobView): HTMLTableRowElement {
  const tags = tagsOf(j);
  return h(
    'tr',
    { 'data-id': j.id, 'data-state': j.state },
    h('td', {}, h('a', { href: `#/jobs/${j.id}`, class: 'mono' }, j.id.slice(0, 8))),
    h('td', {}, j.type),
    h('td', {}, h('span', { class: `state ${j.state}` }, j.state)),
    h('td', {}, j.device, j.queue !== j.device ? ` (${j.queue})` : ''),
    h('td', {}, ...tags.map((t) => h('span', { class: 'tag' }, t))),
    h('td', { class: 'num' }, num(j.progress?.loss)),
    h('td', { class: 'num' }, j.progress ? `${j.progress.epoch + 1} / ${j.progress.step}` : '—'),
    h('td', { class: 'num', title: new Date(j.createdAt).toISOString() }, ago(j.createdAt)),
  );
}

export const jobsPage: Page = (main, state) => {
  const filter = h(
    'select',
    { name: 'state', 'aria-label': 'state' },
    h('option', { value: '' }, 'all states'),
    ...CONTRACT.jobStates.map((s) => h('option', { value: s, selected: s === state }, s)),
  );
  filter.addEventListener('change', () => {
    location.hash = filter.value ? `#/jobs?state=${filter.value}` : '#/jobs';
  });
  const body = h('tbody');
  const table = h(
    'table',
    { id: 'jobs', class: 'no-tags' },
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ...['id', 'type', 'state', 'device', 'tags', 'last loss', 'epoch / step', 'age'].map((c) => h('th', {}, c)),
      ),
    ),
    body,
  );
  const more = h('button', { type: 'button', hidden: true }, 'older jobs');
  let extra: JobView[] = [];
  let cursor: string | null = null;
  const url = (c?: string | null) =>
    `/v1/jobs?limit=${PAGE_SIZE}${state ? `&state=${state}` : ''}${c ? `&cursor=${encodeURIComponent(c)}` : ''}`;
  const draw = (items: JobView[]) => {
    table.classList.toggle('no-tags', !items.some((j) => tagsOf(j).length > 0));
    fill(body, ...items.map(row));
    if (items.length === 0) fill(body, h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'no jobs')));
  };
  let first: JobView[] = [];
  more.addEventListener('click', () => {
    void getJson<JobList>(url(cursor)).then((page) => {
      extra = [...extra, ...page.items];
      cursor = page.nextCursor;
      more.hidden = !cursor;
      draw([...first, ...extra]);
    });
  });
  main.append(
    h(
      'div',
      { class: 'toolbar' },
      h('h1', {}, 'Jobs'),
      filter,
      h('a', { href: '#/submit', class: 'button' }, 'Submit a job'),
    ),
    table,
    more,
  );
  return every(REFRESH_MS, async () => {
    const page = await getJson<JobList>(url());
    first = page.items;
    if (!extra.length) {
      cursor = page.nextCursor;
      more.hidden = !cursor;
    }
    const seen = new Set(first.map((j) => j.id));
    draw([...first, ...extra.filter((j) => !seen.has(j.id))]);
  });
};
