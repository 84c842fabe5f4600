/**
 * One sweep: its state, metric and concurrency, and its trials ranked best first (each a link to its
 * job page), redrawn from GET /v1/sweeps/:id whenever its event stream reports a trial ending, and
 * a cancel button. The stream ends with the sweep's terminal state.
 */
import type { JobEvent, SweepSubmitResponse, SweepView, TrialView } from '@relu-lstm/jobs';
import { getJson, streamEvents } from './api';
import { clearError, coalesced, showError, type Page } from './banner';
import { isTerminal } from './contract';
import { ago, fill, h, num, time } from './dom';
import { rememberSweep, sweepLive } from './sweeps-store';

/** `training.learningRate=0.01, model.hiddenSize=8`: a trial's values, by their dotted paths. */
export const paramsText = (params: Record<string, unknown>): string =>
  Object.entries(params)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');

function trialRow(t: TrialView): HTMLTableRowElement {
  return h(
    'tr',
    { 'data-id': t.id, 'data-state': t.state, 'data-rank': t.rank ?? '' },
    h('td', { class: 'num' }, t.rank ?? '—'),
    h('td', { class: 'num' }, num(t.metric)),
    h('td', {}, h('span', { class: `state ${t.state}` }, t.state)),
    h('td', { class: 'mono' }, paramsText(t.params)),
    h('td', { class: 'num' }, t.epochs ?? '—'),
    h('td', {}, h('a', { href: `#/jobs/${t.id}`, class: 'mono' }, t.id.slice(0, 8)), t.error ? ` ${t.error.code}` : ''),
  );
}

function summary(v: SweepView): HTMLElement {
  const ended = v.trials.filter((t) => isTerminal(t.state)).length;
  return h(
    'dl',
    { class: 'summary' },
    h('dt', {}, 'metric'),
    h('dd', {}, `${v.metric} (lower ranks first)`),
    h('dt', {}, 'max concurrent'),
    h('dd', {}, v.maxConcurrent),
    h('dt', {}, 'trials'),
    h('dd', {}, `${ended} of ${v.trials.length} ended`),
    h('dt', {}, 'created'),
    h('dd', {}, `${time(v.createdAt)} (${ago(v.createdAt)} ago)`),
  );
}

export const sweepPage: Page = (main, id) => {
  const sweepId = id ?? '';
  const base = `/v1/sweeps/${encodeURIComponent(sweepId)}`;
  const abort = new AbortController();
  const badge = h('span', { id: 'sweep-state', class: 'state' }, '…');
  const cancel = h('button', { type: 'button', id: 'cancel-sweep', class: 'danger', disabled: true }, 'Cancel');
  const info = h('div', { id: 'sweep-summary' });
  const body = h('tbody');
  main.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Sweep ', h('span', { class: 'mono' }, sweepId)), badge, cancel),
    info,
    h(
      'table',
      { id: 'trials' },
      h('thead', {}, h('tr', {}, ...['rank', 'metric', 'state', 'params', 'epochs', 'job'].map((c) => h('th', {}, c)))),
      body,
    ),
  );

  let live = true;
  const refresh = async () => {
    const v = await getJson<SweepView>(base);
    live = sweepLive(v.state);
    rememberSweep(v.id, v.createdAt);
    badge.textContent = v.state;
    badge.className = `state ${v.state}`;
    badge.dataset.state = v.state;
    cancel.disabled = !live;
    fill(info, summary(v));
    fill(body, ...v.trials.map(trialRow));
  };
  // A trial event means the ranking changed: one refresh at a time, one more if events came meanwhile.
  const refreshSoon = coalesced(refresh);
  const onEvent = ({ event }: { event: JobEvent }) => {
    if (event.type === 'trial' || event.type === 'state') refreshSoon();
  };
  // Trials start without an event of the sweep's own: their states are polled while it runs.
  const poll = setInterval(() => {
    if (live) refreshSoon();
  }, 3000);

  cancel.addEventListener('click', () => {
    cancel.disabled = true;
    clearError();
    getJson<SweepSubmitResponse>(base, { method: 'DELETE' })
      .then(() => refresh())
      .catch((e: unknown) => {
        showError(e);
        cancel.disabled = false;
      });
  });

  void refresh()
    .then(() => streamEvents(base, onEvent, abort.signal))
    .catch(showError);
  return () => {
    abort.abort();
    clearInterval(poll);
  };
};
