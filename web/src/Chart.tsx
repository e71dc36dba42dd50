import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface Series {
  label: string;
  values: number[];
  color: string;
}

/**
 * A uPlot chart that follows its container's width. `x` are unix seconds (time axis) or, with
 * `categories`, the index of each category (a bar chart). The figure has a caption and a table of the
 * same numbers for screen readers: a canvas alone says nothing to them.
 */
export function Chart({
  title,
  x,
  series,
  categories,
  bars = false,
  height = 220,
  unit = "credits",
  testId,
}: {
  title: string;
  x: number[];
  series: Series[];
  categories?: string[];
  bars?: boolean;
  height?: number;
  unit?: string;
  testId?: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const shape = `${bars}|${categories ? "cat" : "time"}|${series.map((s) => s.label).join(",")}`;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const barPaths = uPlot.paths.bars?.({ size: [0.6, 64] });
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: series.length > 1 },
      cursor: { drag: { x: false, y: false } },
      // Bars sit on their x value: leave half a step on each side so the first and last are whole.
      scales: categories
        ? { x: { time: false, range: (_u, min, max) => [min - 0.5, max + 0.5] } }
        : bars
          ? { x: { range: (_u, min, max) => [min - 43_200, max + 43_200] } }
          : {},
      axes: [
        categories
          ? {
              values: (_u, splits) => splits.map((v) => (Number.isInteger(v) ? (categories[v] ?? "") : "")),
              splits: () => categories.map((_, i) => i),
              stroke: "#333",
              // Long service names slant on narrow screens instead of overlapping.
              ...(el.clientWidth < 560 ? { rotate: -40, size: 90 } : {}),
            }
          : { stroke: "#333" },
        { stroke: "#333", size: 60, values: (_u, splits) => splits.map((v) => compact(v)) },
      ],
      series: [
        {},
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          fill: s.color + (bars ? "cc" : "33"),
          width: bars ? 0 : 2,
          ...(bars && barPaths ? { paths: barPaths, points: { show: false } } : {}),
        })),
      ],
    };
    const u = new uPlot(opts, [x, ...series.map((s) => s.values)], el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // Recreate only when the chart's shape changes; data changes go through setData below.
  }, [shape, height]);

  useEffect(() => {
    plot.current?.setData([x, ...series.map((s) => s.values)]);
  }, [x, series]);

  const labels =
    categories ??
    x.map((t) => new Date(t * 1000).toLocaleDateString("en-GB", { month: "short", day: "numeric" }));
  const total = series.reduce((a, s) => a + s.values.reduce((b, v) => b + v, 0), 0);
  return (
    <figure className="chart" data-testid={testId} data-total={total}>
      <figcaption>{title}</figcaption>
      <div ref={box} className="chart-canvas" aria-hidden="true" />
      <div className="sr-only">
        <table>
          <caption>{title}</caption>
          <thead>
            <tr>
              <th scope="col">{categories ? "Service" : "Day"}</th>
              {series.map((s) => (
                <th scope="col" key={s.label}>
                  {s.label} ({unit})
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {labels.map((l, i) => (
              <tr key={l + i}>
                <th scope="row">{l}</th>
                {series.map((s) => (
                  <td key={s.label}>{compact(s.values[i] ?? 0)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
}

function compact(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "B";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  return String(Math.round(v * 100) / 100);
}
