/**
 * The dashboard: a hash router over its pages (jobs, one job, submit, sweeps, one sweep, models, one
 * model, workers), a key prompt when the api asks for one, and one error banner that shows the api's
 * own words.
 */
import { ApiError, apiKey, setApiKey, whenUnauthorized } from './api';
import { clearError, type Cleanup, type Page } from './banner';
import { fill, h } from './dom';
import { jobPage } from './job-page';
import { jobsPage } from './jobs-page';
import { modelPage, modelsPage } from './models-page';
import { submitPage } from './submit-page';
import { sweepPage } from './sweep-page';
import { sweepsPage } from './sweeps-page';
import { workersPage } from './workers-page';
import './style.css';

const main = document.getElementById('main')!;
let cleanup: Cleanup = () => {};

function route(): { page: Page; arg?: string } {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'jobs' && parts[1]) return { page: jobPage, arg: decodeURIComponent(parts[1]) };
  if (parts[0] === 'sweeps')
    return parts[1] ? { page: sweepPage, arg: decodeURIComponent(parts[1]) } : { page: sweepsPage };
  if (parts[0] === 'models')
    return parts[1] ? { page: modelPage, arg: decodeURIComponent(parts[1]) } : { page: modelsPage };
  if (parts[0] === 'workers') return { page: workersPage };
  if (parts[0] === 'submit') return { page: submitPage };
  return { page: jobsPage, arg: query };
}

function render(): void {
  cleanup();
  clearError();
  const { page, arg } = route();
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', location.hash.startsWith(a.getAttribute('href')!));
  }
  fill(main);
  cleanup = page(main, arg);
}

/** The key prompt: shown when the api answers 401 (keys are configured and none, or a wrong one, was sent). */
function askForKey(e: ApiError): void {
  if (document.getElementById('key-form')) return;
  cleanup();
  cleanup = () => {};
  const input = h('input', { type: 'password', name: 'key', autocomplete: 'off', required: true, size: 48 });
  const remember = h('input', { type: 'checkbox', name: 'remember' });
  const form = h(
    'form',
    { id: 'key-form', class: 'card' },
    h('h2', {}, 'API key'),
    h('p', { class: 'api-message' }, `${e.status} ${e.code}: ${e.message}`),
    h('label', {}, 'Key ', input),
    h('label', { class: 'inline' }, remember, ' remember in this browser (otherwise: this tab only)'),
    h('button', { type: 'submit' }, 'Use key'),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    setApiKey(input.value.trim(), remember.checked);
    showKeyStatus();
    render();
  });
  fill(main, form);
  input.focus();
}

function showKeyStatus(): void {
  const el = document.getElementById('key-status')!;
  if (!apiKey()) return fill(el);
  fill(
    el,
    h(
      'button',
      {
        type: 'button',
        class: 'link',
        onclick: () => {
          setApiKey(null);
          showKeyStatus();
          render();
        },
      },
      'forget key',
    ),
  );
}

whenUnauthorized(askForKey);
window.addEventListener('hashchange', render);
if (!location.hash) location.hash = '#/jobs';
showKeyStatus();
render();
