/**
 * A time-series chart (uPlot) of the last minutes of samples. uPlot draws on a canvas and is
 * updated in place with `setData`, so a chart costs next to nothing per frame.
 */
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { Sample } from "./stream.js";

export interface Series {
  readonly label: string;
  readonly color: string;
  readonly pick: (sample: Sample) => number | null;
}

export function Chart(props: { readonly title: string; readonly unit: string; readonly samples: readonly Sample[]; readonly series: readonly Series[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = (): uPlot.AlignedData => [props.samples.map((s) => s.atMs / 1000), ...props.series.map((series) => props.samples.map(series.pick))];

  useEffect(() => {
    if (box.current === null) return;
    const options: uPlot.Options = {
      width: Math.max(280, box.current.clientWidth),
      height: 150,
      legend: { live: false },
      cursor: { show: false },
      scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [{ stroke: "#889", grid: { stroke: "#2a2f3a" } }, { stroke: "#889", grid: { stroke: "#2a2f3a" }, size: 50 }],
      series: [{}, ...props.series.map((series) => ({ label: `${series.label} (${props.unit})`, stroke: series.color, width: 1.5, spanGaps: true }))],
    };
    plot.current = new uPlot(options, data(), box.current);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  useEffect(() => {
    plot.current?.setData(data());
  }, [props.samples]);

  return (
    <div class="chart">
      <h3>{props.title}</h3>
      <div ref={box} />
    </div>
  );
}
