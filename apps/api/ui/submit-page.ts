/**
 * The submit form of a train job with synthetic data, filled with the README's canonical example.
 * The api validates; its issues are shown and the fields they name are marked.
 */
import type { SubmitResponse } from '@relu-lstm/jobs';
import { ApiError, getJson } from './api';
import { clearError, showError, type Page } from './banner';
import { CONTRACT } from './contract';
import { h } from './dom';

type Kind = 'int' | 'number' | readonly string[];

/** The form's fields: the payload path each fills and how it is read. Blank optional fields are left out. */
const FIELDS: { path: string; kind: Kind; optional?: boolean }[] = [
  { path: 'model.inputSize', kind: 'int' },
  { path: 'model.hiddenSize', kind: 'int' },
  { path: 'model.numLayers', kind: 'int' },
  { path: 'model.activation', kind: CONTRACT.activations },
  { path: 'model.outputSize', kind: 'int' },
  { path: 'data.synthetic.kind', kind: CONTRACT.syntheticKinds },
  { path: 'data.synthetic.samples', kind: 'int' },
  { path: 'data.synthetic.seqLen', kind: 'int' },
  { path: 'training.epochs', kind: 'int' },
  { path: 'training.batchSize', kind: 'int' },
  { path: 'training.optimizer', kind: CONTRACT.optimizers },
  { path: 'training.learningRate', kind: 'number' },
  { path: 'training.loss', kind: CONTRACT.losses, optional: true },
  { path: 'training.seed', kind: 'int' },
  { path: 'training.clipNorm', kind: 'number', optional: true },
  { path: 'training.validationSplit', kind: 'number', optional: true },
  { path: 'training.checkpointEvery', kind: 'int' },
  { path: 'training.progressEvery', kind: 'int', optional: true },
  { path: 'device', kind: CONTRACT.devices },
];

function valueAt(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], obj);
}

function setAt(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys[keys.length - 1]] = value;
}

function input(field: (typeof FIELDS)[number]): HTMLElement {
  const initial = valueAt(CONTRACT.canonicalTrain, field.path);
  const value = typeof initial === 'number' || typeof initial === 'string' ? String(initial) : '';
  if (typeof field.kind !== 'string') {
    const options = field.optional ? ['', ...field.kind] : field.kind;
    return h(
      'select',
      { name: field.path },
      ...options.map((o) => h('option', { value: o, selected: o === value }, o || '(default)')),
    );
  }
  return h('input', {
    name: field.path,
    type: 'number',
    step: field.kind === 'int' ? 1 : 'any',
    value,
    placeholder: field.optional ? '(default)' : undefined,
    required: !field.optional,
  });
}

/** The payload from the form; numbers as typed (the api names any bad one). */
function payloadOf(form: HTMLFormElement): Record<string, unknown> {
  const payload: Record<string, unknown> = {};
  const data = new FormData(form);
  for (const f of FIELDS) {
    const entry = data.get(f.path);
    const raw = typeof entry === 'string' ? entry.trim() : '';
    if (raw === '' && f.optional) continue;
    setAt(payload, f.path, typeof f.kind === 'string' ? Number(raw) : raw);
  }
  return payload;
}

function markIssues(form: HTMLFormElement, e: unknown): void {
  for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
  if (!(e instanceof ApiError)) return;
  for (const issue of e.issues) {
    const field = form.querySelector(`[name="${CSS.escape(issue.path)}"]`);
    field?.closest('label')?.classList.add('invalid');
  }
}

export const submitPage: Page = (main) => {
  const groups = new Map<string, HTMLElement>();
  for (const f of FIELDS) {
    const group = f.path.includes('.') ? f.path.split('.')[0] : 'job';
    if (!groups.has(group)) groups.set(group, h('fieldset', {}, h('legend', {}, group)));
    const label =
      f.path
        .split('.')
        .slice(group === 'data' ? 2 : 1)
        .join('.') || f.path;
    groups.get(group)!.append(h('label', {}, h('span', {}, label), input(f)));
  }
  const button = h('button', { type: 'submit' }, 'Submit train job');
  const form = h('form', { id: 'submit-form', class: 'card' }, ...groups.values(), button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    button.disabled = true;
    clearError();
    getJson<SubmitResponse>('/v1/jobs/train', { method: 'POST', body: payloadOf(form) })
      .then((r) => {
        location.hash = `#/jobs/${r.id}`;
      })
      .catch((e: unknown) => {
        markIssues(form, e);
        showError(e);
      })
      .finally(() => (button.disabled = false));
  });
  main.append(
    h('h1', {}, 'Submit a training job'),
    h('p', { class: 'muted' }, 'Synthetic data; the values are the README’s canonical example.'),
    form,
  );
  return () => {};
};
