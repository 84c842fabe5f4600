/** Live workers (their heartbeats), refreshed every 2 s. */
import type { WorkerHeartbeat } from '@relu-lstm/jobs';
import { getJson } from './api';
import { every, type Page } from './banner';
import { ago, fill, h } from './dom';

function row(w: WorkerHeartbeat): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-id': w.id },
    h('td', { class: 'mono' }, w.id),
    h('td', {}, w.backend),
    h('td', {}, w.gpu ? h('span', { class: 'tag' }, 'GPU') : '', ' ', w.device),
    h('td', {}, w.host, h('span', { class: 'muted' }, ` pid ${w.pid}`)),
    h('td', {}, w.queues.join(', ')),
    h(
      'td',
      {},
      w.currentJobId ? h('a', { href: `#/jobs/${w.currentJobId}`, class: 'mono' }, w.currentJobId.slice(0, 8)) : 'idle',
    ),
    h('td', { class: 'num' }, `${ago(w.at)} ago`),
    h('td', { class: 'num' }, ago(w.startedAt)),
  );
}

export const workersPage: Page = (main) => {
  const body = h('tbody');
  main.append(
    h('h1', {}, 'Workers'),
    h(
      'table',
      { id: 'workers' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          ...['id', 'backend', 'device / adapter', 'host', 'queues', 'current job', 'last heartbeat', 'up'].map((c) =>
            h('th', {}, c),
          ),
        ),
      ),
      body,
    ),
  );
  return every(2000, async () => {
    const { items } = await getJson<{ items: WorkerHeartbeat[] }>('/v1/workers');
    fill(body, ...items.map(row));
    if (!items.length) fill(body, h('tr', {}, h('td', { colspan: 8, class: 'empty' }, 'no live workers')));
  });
};
