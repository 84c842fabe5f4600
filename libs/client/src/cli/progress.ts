/**
 * What `relu-lstm submit --watch` prints: a one-line progress bar redrawn in place on a terminal,
 * or one plain line per event otherwise. The formatting functions are pure; `ProgressPrinter` owns
 * the terminal line.
 */
import type { JobEvent, MetricEvent, StateEvent, TrainPayloadInput } from '@relu-lstm/jobs';
import { splitSamples } from '@relu-lstm/lstm/config';

export interface ProgressPlan {
  /** `training.epochs` of the payload; null for infer jobs or when unknown. */
  epochs: number | null;
  /** Optimizer steps per epoch when the payload tells (inline or synthetic data); learned from the first epoch otherwise. */
  stepsPerEpoch: number | null;
}

/** Epochs and steps per epoch as far as a train payload tells them. */
export function planFromPayload(payload: unknown): ProgressPlan {
  const p = payload as Partial<TrainPayloadInput> | undefined;
  const epochs = typeof p?.training?.epochs === 'number' ? p.training.epochs : null;
  const batch = p?.training?.batchSize;
  const samples =
    p?.data?.synthetic?.samples ?? (Array.isArray(p?.data?.inline?.x) ? p.data.inline.x.length : undefined);
  if (epochs === null || typeof batch !== 'number' || batch < 1 || typeof samples !== 'number')
    return { epochs, stepsPerEpoch: null };
  const train = splitSamples(samples, p?.training?.validationSplit ?? 0).train;
  return { epochs, stepsPerEpoch: Math.max(1, Math.ceil(train / batch)) };
}

/** Fraction done in [0, 1], or null when it cannot be told. */
export function fractionDone(m: Pick<MetricEvent, 'epoch' | 'step' | 'epochEnd'>, plan: ProgressPlan): number | null {
  if (!plan.epochs) return null;
  const f = plan.stepsPerEpoch
    ? m.step / (plan.epochs * plan.stepsPerEpoch)
    : (m.epoch + (m.epochEnd ? 1 : 0)) / plan.epochs;
  return Math.min(1, Math.max(0, f));
}

export function bar(fraction: number | null, width = 20): string {
  if (fraction === null) return '';
  const full = Math.round(fraction * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(Math.floor(fraction * 100)).padStart(3)}%`;
}

/** Up to 4 significant digits, exponent form for very small or large values. */
export function num(x: number | null | undefined): string {
  if (x === null || x === undefined) return '-';
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return String(Number(x.toPrecision(4)));
}

export function duration(ms: number): string {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** `epoch 2/3 step 40 loss 0.0123 val 0.015 |g| 0.52 1200 samples/s 3.4s` (epoch 1-based for people). */
export function metricText(m: MetricEvent, plan: ProgressPlan): string {
  const parts = [
    `epoch ${m.epoch + 1}${plan.epochs ? `/${plan.epochs}` : ''}`,
    `step ${m.step}`,
    `loss ${num(m.loss)}`,
  ];
  if (m.valLoss !== null) parts.push(`val ${num(m.valLoss)}`);
  if (m.gradNorm !== null) parts.push(`|g| ${num(m.gradNorm)}`);
  parts.push(`${num(Math.round(m.samplesPerSec))} samples/s`, duration(m.elapsedMs));
  return parts.join(' ');
}

export function progressLine(m: MetricEvent, plan: ProgressPlan): string {
  const b = bar(fractionDone(m, plan));
  return b ? `${b} ${metricText(m, plan)}` : metricText(m, plan);
}

/** A line for a state or log event. */
export function eventText(e: Exclude<JobEvent, MetricEvent>): string {
  if (e.type === 'log') return `${e.level}: ${e.message}`;
  if (e.type === 'trial')
    return `trial ${e.trialId} ${e.state}${e.metric === null ? '' : ` (metric ${e.metric.toPrecision(4)})`}`;
  return stateText(e);
}

function stateText(e: StateEvent): string {
  switch (e.state) {
    case 'running':
      return `running${e.attempt ? ` (attempt ${e.attempt})` : ''}${e.workerId ? ` on ${e.workerId}` : ''}`;
    case 'failed':
    case 'cancelled':
      return `${e.state}${e.error ? `: ${e.error.code}: ${e.error.message}` : ''}`;
    default:
      return e.state;
  }
}

export interface Output {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** Prints events: on a TTY the metric line is redrawn in place, other lines go above it. */
export class ProgressPrinter {
  private barShown = false;
  private lastBar = '';
  constructor(
    private readonly out: Output,
    readonly plan: ProgressPlan,
  ) {}

  get tty(): boolean {
    return Boolean(this.out.isTTY);
  }

  event(e: JobEvent): void {
    if (e.type === 'metric') {
      // Learn the steps per epoch from the first finished epoch of a fresh run.
      if (!this.plan.stepsPerEpoch && e.epochEnd && e.epoch === 0 && e.step > 0) this.plan.stepsPerEpoch = e.step;
      const line = progressLine(e, this.plan);
      if (this.tty) this.redraw(line);
      else this.out.write(`${line}\n`);
      return;
    }
    this.line(eventText(e));
  }

  /** A line above the bar (or plain). */
  line(text: string): void {
    if (this.tty && this.barShown) {
      this.out.write(`\r\x1b[2K${text}\n`);
      this.redraw(this.lastBar);
    } else {
      this.out.write(`${text}\n`);
    }
  }

  /** Leaves the bar on screen and ends its line. */
  finish(): void {
    if (this.tty && this.barShown) this.out.write('\n');
    this.barShown = false;
  }

  private redraw(line: string): void {
    const width = this.out.columns && this.out.columns > 10 ? this.out.columns - 1 : 0;
    this.lastBar = line;
    this.out.write(`\r\x1b[2K${width ? line.slice(0, width) : line}`);
    this.barShown = true;
  }
}
