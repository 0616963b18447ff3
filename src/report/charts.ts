// Charts as files: a Vega-Lite spec compiled by vega-lite, rendered headless by vega to SVG (no
// browser, no canvas: vega's own scenegraph writes the markup), then rasterized to PNG by sharp
// (librsvg). The font is DejaVu Sans, which scripts/setup.sh installs, so the PNG's text renders
// the same offline on any machine; the SVG names the same font. Both files are written atomically.
import sharp from 'sharp';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../util/atomic_write';
import { dejaVuWidth, type TextStyle } from './text_width';

type Engine = { vega: typeof import('vega'); compile: typeof import('vega-lite').compile };
let engine: Promise<Engine> | undefined;

/** vega and vega-lite, loaded on the first chart: every `medgr2` command starts ~0.2 s sooner. */
function loadEngine(): Promise<Engine> {
  engine ??= Promise.all([import('vega'), import('vega-lite')]).then(([vega, vl]) => {
    // vega measures text through this hook (vl-convert sets it the same way); without a canvas its
    // default guesses widths, so layout is done with the real font's widths instead. Vega's own
    // truncation (labelLimit) calls it on the untruncated text, so it measures text as given.
    (vega as unknown as { textMetrics: { width: (item: TextStyle, text: unknown) => number } }).textMetrics.width = (
      item,
      text,
    ) => dejaVuWidth(text === null || text === undefined ? '' : String(text).trim(), item);
    return { vega, compile: vl.compile };
  });
  return engine;
}

export type ChartSpec = TopLevelSpec;

export const CHART_FONT = 'DejaVu Sans';

/** The look every chart shares: one font, a white background (a PNG must not be transparent),
 *  titles large enough to read at report width. */
export const CHART_CONFIG = {
  font: CHART_FONT,
  background: 'white',
  padding: 12,
  title: { fontSize: 15, anchor: 'start', offset: 12, subtitleFontSize: 11, subtitleColor: '#555' },
  axis: { titleFontSize: 12, labelFontSize: 11, titlePadding: 8, gridColor: '#e6e6e6' },
  legend: { titleFontSize: 12, labelFontSize: 11, labelLimit: 260 },
  header: { titleFontSize: 12, labelFontSize: 12 },
  view: { stroke: null },
} as const;

/** PNG pixels per SVG unit: 2 keeps text sharp when a report viewer scales the image down. */
export const PNG_SCALE = 2;

/** The spec with the shared config under its own (the spec's own settings win). */
export function withChartConfig(spec: ChartSpec): ChartSpec {
  const own = (spec as { config?: Record<string, unknown> }).config ?? {};
  const config: Record<string, unknown> = { ...CHART_CONFIG };
  for (const [k, v] of Object.entries(own)) {
    const base = config[k];
    config[k] = base && typeof base === 'object' && v && typeof v === 'object' ? { ...base, ...v } : v;
  }
  return { ...spec, config } as ChartSpec;
}

/** Renders a Vega-Lite spec to SVG markup (data must be inline: nothing is loaded). */
export async function chartSvg(spec: ChartSpec): Promise<string> {
  const { vega, compile } = await loadEngine();
  const compiled = compile(withChartConfig(spec)).spec;
  // charts never read files or the network (vega would log a failed load and draw an empty chart)
  for (const d of compiled.data ?? [])
    if ('url' in d) throw new Error(`charts: data must be inline, not loaded from ${String(d.url)}`);
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Width and height the SVG's root element declares (vega always writes both). */
export function svgSize(svg: string): { width: number; height: number } {
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  if (!m) throw new Error('charts: the SVG declares no width/height');
  return { width: Number(m[1]), height: Number(m[2]) };
}

export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density: 72 * PNG_SCALE })
    .png()
    .toBuffer();
}

/**
 * Writes the chart as `file` (a .png path) and the SVG beside it (same name, .svg): the PNG is what
 * report.md shows, the SVG is text a test (or a person) can search for titles and labels.
 */
export async function writeChart(file: string, spec: ChartSpec): Promise<{ png: string; svg: string }> {
  if (!file.endsWith('.png')) throw new Error(`charts: ${file}: the chart file must end in .png`);
  const svgText = await chartSvg(spec);
  const svgFile = file.slice(0, -'.png'.length) + '.svg';
  await writeFileAtomic(svgFile, svgText);
  await writeFileAtomic(file, await svgToPng(svgText));
  return { png: file, svg: svgFile };
}
