/**
 * Metric charts over the optimizer step, drawn with uPlot (canvas, ~50 KB, no dependencies). Points
 * are added as events arrive; redraws are batched to one per animation frame, so replaying a long
 * history on load draws once.
 */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom';

export interface SeriesSpec {
  label: string;
  color: string;
}

export class MetricChart {
  readonly el: HTMLElement;
  private readonly plot: uPlot;
  private readonly data: (number | null)[][];
  private pending = false;

  constructor(options: { id: string; title: string; series: SeriesSpec[]; log?: boolean }) {
    this.el = h('div', { class: 'chart', id: options.id, 'data-points': 0 });
    this.data = [[], ...options.series.map(() => [])];
    this.plot = new uPlot(
      {
        title: options.title,
        width: 480,
        height: 220,
        scales: { x: { time: false }, y: options.log ? { distr: 3 } : {} },
        series: [
          { label: 'step' },
          ...options.series.map((s) => ({
            label: s.label,
            stroke: s.color,
            width: 2,
            spanGaps: true,
            points: { size: 5 },
          })),
        ],
        axes: [{ label: 'step' }, {}],
        legend: { live: true },
      },
      this.data as uPlot.AlignedData,
      this.el,
    );
  }

  /**
   * A point at step `x`; `null` leaves a series without a value there. A step at or before the last
   * one (a resumed attempt, a divergence rollback) replaces the points from there on, as the run did.
   */
  add(x: number, ys: (number | null)[]): void {
    const xs = this.data[0];
    let keep = xs.length;
    while (keep > 0 && (xs[keep - 1] ?? -Infinity) >= x) keep--;
    if (keep < xs.length) for (const series of this.data) series.length = keep;
    xs.push(x);
    ys.forEach((y, i) => this.data[i + 1].push(y !== null && Number.isFinite(y) ? y : null));
    this.el.dataset.points = String(this.data[0].length);
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.plot.setData(this.data as uPlot.AlignedData);
    });
  }

  resize(width: number): void {
    this.plot.setSize({ width: Math.max(240, width), height: 220 });
  }

  destroy(): void {
    this.plot.destroy();
  }
}
