/**
 * One job: its view, live metric charts (replayed from the first event on load), the state timeline
 * (attempts, rollbacks, checkpoints and the worker's other notes), the result, the artifacts and a
 * cancel button. Everything comes from GET /v1/jobs/:id, its event stream and its artifact list.
 */
import type {
  ArtifactList,
  CancelResponse,
  JobEvent,
  JobView,
  LogEvent,
  StateArtifact,
  StateEvent,
} from '@relu-lstm/jobs';
import { download, getJson, streamEvents } from './api';
import { clearError, coalesced, showError, type Page } from './banner';
import { MetricChart } from './charts';
import { CONTRACT, isTerminal } from './contract';
import { ago, fill, h, num, shapeOf, time } from './dom';

/** Log codes drawn as milestones in the timeline; other codes are listed as notes. */
const MILESTONES: Record<string, string> = {
  checkpoint: 'checkpoint',
  resumed: 'resumed',
  attempt_failed: 'attempt failed',
  [CONTRACT.divergenceRollback]: 'rollback',
};

type Charts = Record<'loss' | 'gradNorm' | 'learningRate' | 'speed', MetricChart>;

function makeCharts(): Charts {
  return {
    loss: new MetricChart({
      id: 'chart-loss',
      title: 'loss',
      series: [
        { label: 'loss', color: '#2563eb' },
        { label: 'validation loss', color: '#ea580c' },
      ],
    }),
    gradNorm: new MetricChart({
      id: 'chart-grad',
      title: 'gradient norm',
      series: [{ label: 'grad norm', color: '#7c3aed' }],
    }),
    learningRate: new MetricChart({
      id: 'chart-lr',
      title: 'learning rate',
      series: [{ label: 'lr', color: '#059669' }],
    }),
    speed: new MetricChart({
      id: 'chart-speed',
      title: 'samples/s',
      series: [{ label: 'samples/s', color: '#b45309' }],
    }),
  };
}

function timelineEntry(e: StateEvent | LogEvent): HTMLLIElement | null {
  if (e.type === 'state') {
    const detail =
      e.state === 'running'
        ? `attempt ${e.attempt ?? '?'}${e.workerId ? ` on ${e.workerId}` : ''}`
        : e.error
          ? `${e.error.code}: ${e.error.message}`
          : '';
    return h(
      'li',
      { class: `state ${e.state}`, 'data-kind': e.state },
      h('time', {}, time(e.at)),
      h('span', { class: `state ${e.state}` }, e.state),
      ' ',
      detail,
    );
  }
  const milestone = e.code ? MILESTONES[e.code] : undefined;
  return h(
    'li',
    { class: `log ${e.level}${milestone ? ' milestone' : ''}`, 'data-kind': e.code ?? e.level },
    h('time', {}, time(e.at)),
    h('span', { class: 'code' }, milestone ?? e.code ?? e.level),
    ' ',
    e.message,
  );
}

function field(label: string, value: Node | string): HTMLElement[] {
  return [h('dt', {}, label), h('dd', {}, value)];
}

function summary(v: JobView): HTMLElement {
  const p = v.progress;
  return h(
    'dl',
    { class: 'summary' },
    ...field('type', v.type),
    ...field('device', `${v.device} (queue ${v.queue})`),
    ...field('attempts', `${v.attempts} of ${v.maxAttempts}`),
    ...field('created', `${time(v.createdAt)} (${ago(v.createdAt)} ago)`),
    ...field('started', time(v.startedAt)),
    ...field('finished', time(v.finishedAt)),
    ...field('epoch / step', p ? `${p.epoch + 1} / ${p.step}` : '—'),
    ...field('last loss', num(p?.loss)),
    ...field('samples/s', num(p?.samplesPerSec)),
    ...(v.cancelRequested ? field('cancel', 'requested') : []),
  );
}

/** The result: train's summary, infer's output and state shapes (hN, cN), never the numbers themselves. */
function resultView(v: JobView): HTMLElement | null {
  if (v.error) return h('div', { class: 'error-box' }, h('strong', {}, v.error.code), ': ', v.error.message);
  if (!v.result || typeof v.result !== 'object') return null;
  const r = v.result as Record<string, unknown>;
  const rows: [string, string][] = [];
  for (const [k, value] of Object.entries(r)) {
    rows.push([k, resultValue(value)]);
  }
  return h(
    'table',
    { class: 'kv' },
    h('tbody', {}, ...rows.map(([k, val]) => h('tr', {}, h('th', {}, k), h('td', {}, val)))),
  );
}

/** Nested arrays (outputs, hN, cN) by their shape; an artifact reference by its name and shape. */
function resultValue(value: unknown): string {
  if (Array.isArray(value) && Array.isArray(value[0])) return `shape [${shapeOf(value).join(', ')}]`;
  if (Array.isArray(value)) return value.join(', ');
  if (typeof value === 'number') return num(value);
  if (value && typeof value === 'object') {
    const ref = value as { name?: string; shape?: number[] };
    return ref.shape ? `${ref.name}, shape [${ref.shape.join(', ')}]` : JSON.stringify(value);
  }
  return String(value);
}

/** A trained model's final state (state.json): the shapes of h_n and c_n and of the input that produced them. */
function finalStateView(s: StateArtifact): HTMLElement {
  const rows: [string, string][] = [
    ['h_n', `shape [${s.shapes.h_n.join(', ')}]`],
    ['c_n', `shape [${s.shapes.c_n.join(', ')}]`],
    ['after input', `${s.input.source}, shape [${s.input.shape.join(', ')}]`],
  ];
  return h(
    'table',
    { class: 'kv', id: 'final-state' },
    h('caption', {}, `final state (${CONTRACT.artifacts.state})`),
    h('tbody', {}, ...rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v)))),
  );
}

function artifactsView(list: ArtifactList): HTMLElement {
  if (!list.items.length) return h('p', { class: 'muted' }, 'none yet');
  return h(
    'table',
    {},
    h(
      'tbody',
      {},
      ...list.items.map((a) =>
        h(
          'tr',
          { 'data-name': a.name },
          h('td', { class: 'mono' }, a.name),
          h('td', { class: 'num' }, `${a.size.toLocaleString()} B`),
          h(
            'td',
            {},
            h(
              'button',
              { type: 'button', class: 'link', onclick: () => void download(a.url, a.name).catch(showError) },
              'download',
            ),
          ),
        ),
      ),
    ),
  );
}

export const jobPage: Page = (main, id) => {
  const jobId = id ?? '';
  const abort = new AbortController();
  const charts = makeCharts();
  const badge = h('span', { id: 'job-state', class: 'state' }, '…');
  const cancel = h('button', { type: 'button', id: 'cancel', class: 'danger', disabled: true }, 'Cancel');
  const info = h('div', { id: 'job-summary' });
  const timeline = h('ol', { id: 'timeline' });
  const result = h('div', { id: 'result' });
  const finalState = h('div');
  let finalStateShown = false;
  const artifacts = h('div', { id: 'artifacts' });
  const chartBox = h('div', { class: 'charts' }, ...Object.values(charts).map((c) => c.el));
  main.append(
    h('div', { class: 'toolbar' }, h('h1', {}, 'Job ', h('span', { class: 'mono' }, jobId)), badge, cancel),
    info,
    chartBox,
    h(
      'div',
      { class: 'columns' },
      h('section', {}, h('h2', {}, 'Timeline'), timeline),
      h('section', {}, h('h2', {}, 'Result'), result, finalState, h('h2', {}, 'Artifacts'), artifacts),
    ),
  );

  const resize = () => {
    const w = chartBox.clientWidth;
    const perRow = w > 1000 ? 2 : 1;
    for (const c of Object.values(charts)) c.resize(Math.floor(w / perRow) - 24);
  };
  window.addEventListener('resize', resize);
  resize();

  const showView = (v: JobView) => {
    badge.textContent = v.state;
    badge.className = `state ${v.state}`;
    badge.dataset.state = v.state;
    chartBox.hidden = v.type !== 'train'; // only training reports metrics
    cancel.disabled = isTerminal(v.state);
    fill(info, summary(v));
    fill(result, resultView(v) ?? h('p', { class: 'muted' }, isTerminal(v.state) ? 'none' : 'not yet'));
  };
  const base = `/v1/jobs/${encodeURIComponent(jobId)}`;
  const refresh = async () => {
    const view = await getJson<JobView>(base);
    showView(view);
    const list = await getJson<ArtifactList>(`${base}/artifacts`);
    fill(artifacts, artifactsView(list));
    const state = list.items.find((a) => a.name === CONTRACT.artifacts.state);
    if (view.state === 'completed' && state && !finalStateShown) {
      finalStateShown = true;
      fill(finalState, finalStateView(await getJson<StateArtifact>(state.url)));
    }
  };

  // Coalesced: replaying a long history's checkpoints asks for one refresh at a time, plus one after.
  const refreshSoon = coalesced(refresh);

  cancel.addEventListener('click', () => {
    cancel.disabled = true;
    clearError();
    getJson<CancelResponse>(base, { method: 'DELETE' })
      .then(() => refresh())
      .catch((e: unknown) => {
        showError(e);
        cancel.disabled = false;
      });
  });

  const onEvent = ({ event }: { event: JobEvent }) => {
    if (event.type === 'metric') {
      charts.loss.add(event.step, [event.loss, event.valLoss]);
      charts.gradNorm.add(event.step, [event.gradNorm]);
      charts.learningRate.add(event.step, [event.learningRate ?? null]);
      charts.speed.add(event.step, [event.samplesPerSec]);
      return;
    }
    if (event.type === 'trial') return; // only on a sweep's stream, never a job's
    const entry = timelineEntry(event);
    if (entry) timeline.append(entry);
    if (event.type === 'state' || event.code === 'checkpoint') refreshSoon();
  };

  void refresh()
    .then(() => streamEvents(base, onEvent, abort.signal))
    .catch(showError);
  return () => {
    abort.abort();
    window.removeEventListener('resize', resize);
    for (const c of Object.values(charts)) c.destroy();
  };
};
