/**
 * Sweeps: the ones this browser started or opened (sweeps-store.ts), each with its state and best
 * trial, a field to open any sweep by id, and a form that starts a grid sweep over the canonical job.
 */
import type { SweepSubmitResponse, SweepView } from '@relu-lstm/jobs';
import { ApiError, getJson } from './api';
import { clearError, every, showError, type Page } from './banner';
import { CONTRACT, isTerminal } from './contract';
import { ago, fill, formText, h, num } from './dom';
import { paramsText } from './sweep-page';
import { forgetSweep, rememberedSweeps, rememberSweep, sweepLive } from './sweeps-store';

const REFRESH_MS = 3000;

function forgetButton(id: string, onForget: () => void): HTMLButtonElement {
  return h(
    'button',
    {
      type: 'button',
      class: 'link',
      onclick: () => {
        forgetSweep(id);
        onForget();
      },
    },
    'forget',
  );
}

function sweepRow(id: string, v: SweepView | null, onForget: () => void): HTMLTableRowElement {
  const link = h('td', {}, h('a', { href: `#/sweeps/${id}`, class: 'mono' }, id.slice(0, 8)));
  if (!v) {
    return h(
      'tr',
      { 'data-id': id },
      link,
      h('td', { colspan: 5, class: 'muted' }, 'not found (or not yours)'),
      h('td', {}, forgetButton(id, onForget)),
    );
  }
  const best = v.trials.find((t) => t.rank === 1);
  const ended = v.trials.filter((t) => isTerminal(t.state)).length;
  return h(
    'tr',
    { 'data-id': id, 'data-state': v.state },
    link,
    h('td', {}, h('span', { class: `state ${v.state}` }, v.state)),
    h('td', { class: 'num' }, `${ended} / ${v.trials.length}`),
    h('td', { class: 'num' }, best ? `${v.metric} ${num(best.metric)}` : '—'),
    h('td', { class: 'mono' }, best ? paramsText(best.params) : ''),
    h('td', { class: 'num' }, ago(v.createdAt)),
    h('td', {}, forgetButton(id, onForget)),
  );
}

/** `0.01, 0.003` → [0.01, 0.003]; a value that is no number is sent as typed, for the api to name. */
const listOf = (text: string): (number | string)[] =>
  text
    .split(/[\s,]+/)
    .filter(Boolean)
    .map((s) => (Number.isFinite(Number(s)) ? Number(s) : s));

function field(label: string, control: HTMLElement): HTMLLabelElement {
  return h('label', {}, h('span', {}, label), control);
}

function gridForm(): HTMLFormElement {
  const c = CONTRACT.canonicalTrain;
  const text = (name: string, value: string) => h('input', { name, value, required: true, size: 24 });
  const number = (name: string, value: number, step: number | 'any') =>
    h('input', { name, type: 'number', step, value, required: true });
  const button = h('button', { type: 'submit' }, 'Start grid sweep');
  const form = h(
    'form',
    { id: 'sweep-form', class: 'card' },
    h(
      'fieldset',
      {},
      h('legend', {}, 'grid over the canonical job'),
      field('learning rates', text('learningRates', `${c.training.learningRate}, 0.003`)),
      field('hidden sizes', text('hiddenSizes', `${c.model.hiddenSize}`)),
      field('epochs', number('epochs', c.training.epochs, 1)),
      field('validation split', number('validationSplit', 0.2, 'any')),
      field('max concurrent', number('maxConcurrent', 2, 1)),
      field(
        'metric',
        h('select', { name: 'metric' }, ...CONTRACT.sweepMetrics.map((m) => h('option', { value: m }, m))),
      ),
    ),
    button,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const get = (k: string) => formText(d, k);
    const base = {
      ...c,
      training: { ...c.training, epochs: Number(get('epochs')), validationSplit: Number(get('validationSplit')) },
    };
    const body = {
      base,
      search: {
        grid: { 'training.learningRate': listOf(get('learningRates')), 'model.hiddenSize': listOf(get('hiddenSizes')) },
      },
      maxConcurrent: Number(get('maxConcurrent')),
      metric: get('metric'),
    };
    button.disabled = true;
    clearError();
    getJson<SweepSubmitResponse>('/v1/sweeps', { method: 'POST', body })
      .then((r) => {
        rememberSweep(r.id, Date.now());
        location.hash = `#/sweeps/${r.id}`;
      })
      .catch(showError)
      .finally(() => (button.disabled = false));
  });
  return form;
}

export const sweepsPage: Page = (main) => {
  const body = h('tbody');
  const idInput = h('input', { name: 'sweep-id', placeholder: 'sweep id', size: 38, required: true });
  const open = h('form', { id: 'open-sweep', class: 'inline-form' }, idInput, h('button', { type: 'submit' }, 'Open'));
  open.addEventListener('submit', (ev) => {
    ev.preventDefault();
    location.hash = `#/sweeps/${encodeURIComponent(idInput.value.trim())}`;
  });
  main.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Sweeps'), open),
    h('p', { class: 'muted' }, 'The sweeps started or opened in this browser (the api keeps no list of them).'),
    h(
      'table',
      { id: 'sweeps' },
      h(
        'thead',
        {},
        h('tr', {}, ...['id', 'state', 'trials ended', 'best', 'best params', 'age', ''].map((c) => h('th', {}, c))),
      ),
      body,
    ),
    h('h2', {}, 'Start a sweep'),
    gridForm(),
  );
  // An ended sweep does not change: it is fetched once per visit, the others on every refresh.
  const ended = new Map<string, SweepView | null>();
  const viewOf = async (id: string): Promise<SweepView | null> => {
    if (ended.has(id)) return ended.get(id)!;
    const v = await getJson<SweepView>(`/v1/sweeps/${encodeURIComponent(id)}`).catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return null;
      throw e;
    });
    if (!v || !sweepLive(v.state)) ended.set(id, v);
    return v;
  };
  const draw = async () => {
    const ids = rememberedSweeps().map((s) => s.id);
    const views = await Promise.all(ids.map(viewOf));
    fill(body, ...ids.map((id, i) => sweepRow(id, views[i], () => void draw().catch(showError))));
    if (!ids.length) fill(body, h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'no sweeps yet')));
  };
  return every(REFRESH_MS, draw);
};
