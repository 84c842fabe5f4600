/**
 * The jobs list: newest first, filtered by state, tag (`key:value`) and name through the api's search
 * (the filters live in the hash, `#/jobs?state=&tag=&name=`), refreshed every 2 s.
 */
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
    h('td', { class: 'num' }, j.priority ?? '—'),
    h('td', { class: 'num' }, num(j.progress?.loss)),
    h('td', { class: 'num' }, j.progress ? `${j.progress.epoch + 1} / ${j.progress.step}` : '—'),
    h('td', { class: 'num', title: new Date(j.createdAt).toISOString() }, ago(j.createdAt)),
  );
}

/** The filter form: state, tag and name; a change puts them in the hash (the route renders the list anew). */
function filterForm(query: URLSearchParams): HTMLFormElement {
  const state = query.get('state') ?? '';
  const form = h(
    'form',
    { id: 'job-filters', class: 'inline-form' },
    h(
      'select',
      { name: 'state', 'aria-label': 'state' },
      h('option', { value: '' }, 'all states'),
      ...CONTRACT.jobStates.map((s) => h('option', { value: s, selected: s === state }, s)),
    ),
    h('input', { name: 'tag', placeholder: 'tag key:value', 'aria-label': 'tag', value: query.get('tag') ?? '' }),
    h('input', { name: 'name', placeholder: 'name', 'aria-label': 'name', value: query.get('name') ?? '' }),
    h('button', { type: 'submit' }, 'Filter'),
  );
  const apply = (ev: Event) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (typeof v === 'string' && v.trim()) q.set(k, v.trim());
    location.hash = q.toString() ? `#/jobs?${q.toString()}` : '#/jobs';
  };
  form.addEventListener('submit', apply);
  form.querySelector('select')!.addEventListener('change', apply);
  return form;
}

export const jobsPage: Page = (main, queryText) => {
  const query = new URLSearchParams(queryText ?? '');
  const search = new URLSearchParams();
  for (const k of ['state', 'tag', 'name']) if (query.get(k)) search.set(k, query.get(k)!);
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
        ...['id', 'type', 'state', 'device', 'tags', 'priority', 'last loss', 'epoch / step', 'age'].map((c) =>
          h('th', {}, c),
        ),
      ),
    ),
    body,
  );
  const more = h('button', { type: 'button', hidden: true }, 'older jobs');
  let extra: JobView[] = [];
  let cursor: string | null = null;
  const url = (c?: string | null) =>
    `/v1/jobs?limit=${PAGE_SIZE}${search.toString() ? `&${search.toString()}` : ''}${c ? `&cursor=${encodeURIComponent(c)}` : ''}`;
  const draw = (items: JobView[]) => {
    table.classList.toggle('no-tags', !items.some((j) => tagsOf(j).length > 0));
    fill(body, ...items.map(row));
    if (items.length === 0) fill(body, h('tr', {}, h('td', { colspan: 9, class: 'empty' }, 'no jobs')));
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
      filterForm(query),
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
