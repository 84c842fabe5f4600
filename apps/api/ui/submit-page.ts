/**
 * The submit form of a train job with synthetic data, filled with the README's canonical example,
 * and the job's optional name, tags and priority. The api validates; its issues are shown and the
 * fields they name are marked.
 */
import type { SubmitResponse } from '@relu-lstm/jobs';
import { ApiError, getJson } from './api';
import { clearError, showError, type Page } from './banner';
import { CONTRACT } from './contract';
import { formText, h } from './dom';

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

/** A tag the form cannot read: named like the api's issues, with the field to mark. */
class TagsError extends Error {}

/** `k=v` (or `k:v`) pairs, one a line or comma separated. */
function tagsOf(text: string): Record<string, string> | undefined {
  const pairs = text
    .split(/[\n,]+/)
    .map((p) => p.trim())
    .filter(Boolean);
  if (!pairs.length) return undefined;
  const tags: Record<string, string> = {};
  for (const p of pairs) {
    const at = p.search(/[=:]/);
    if (at <= 0) throw new TagsError(`tags: expected key=value, received "${p}"`);
    tags[p.slice(0, at).trim()] = p.slice(at + 1).trim();
  }
  return tags;
}

/** The job options (name, tags, priority) from the form; blank ones are left out (priority then defaults). */
function optionsOf(form: HTMLFormElement): Record<string, unknown> {
  const d = new FormData(form);
  const get = (k: string) => formText(d, k);
  const tags = tagsOf(get('tags'));
  return {
    ...(get('name') ? { name: get('name') } : {}),
    ...(tags ? { tags } : {}),
    ...(get('priority') ? { priority: Number(get('priority')) } : {}),
  };
}

function optionsFieldset(): HTMLFieldSetElement {
  const p = CONTRACT.jobPriority;
  return h(
    'fieldset',
    {},
    h('legend', {}, 'job options'),
    h('label', {}, h('span', {}, 'name'), h('input', { name: 'name', placeholder: '(none)', maxlength: 128 })),
    h(
      'label',
      {},
      h('span', {}, 'tags'),
      h('textarea', { name: 'tags', rows: 2, placeholder: 'project=sine (one a line)' }),
    ),
    h(
      'label',
      {},
      h('span', {}, `priority (${p.highest} highest)`),
      h('input', {
        name: 'priority',
        type: 'number',
        step: 1,
        min: p.highest,
        max: p.lowest,
        placeholder: String(p.default),
      }),
    ),
  );
}

function markIssues(form: HTMLFormElement, e: unknown): void {
  for (const el of form.querySelectorAll('.invalid')) el.classList.remove('invalid');
  const paths = e instanceof ApiError ? e.issues.map((i) => i.path) : e instanceof TagsError ? ['tags'] : [];
  for (const path of paths) {
    // `tags.<key>` marks the tags field.
    const field =
      form.querySelector(`[name="${CSS.escape(path)}"]`) ??
      form.querySelector(`[name="${CSS.escape(path.split('.')[0])}"]`);
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
  const form = h('form', { id: 'submit-form', class: 'card' }, ...groups.values(), optionsFieldset(), button);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    button.disabled = true;
    clearError();
    Promise.resolve()
      .then(() => ({ ...payloadOf(form), ...optionsOf(form) }))
      .then((body) => getJson<SubmitResponse>('/v1/jobs/train', { method: 'POST', body }))
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
