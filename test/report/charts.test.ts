// The chart renderer: a Vega-Lite spec becomes an SVG with its title, axis titles, legend and value
// labels as text in DejaVu Sans, and a PNG of twice the SVG's size that is not blank; text is laid
// out with the font's real widths (a long tick label is not cut short).
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chartSvg, writeChart, type ChartSpec } from '../../src/report/charts';
import { dejaVuWidth } from '../../src/report/text_width';
import { assertPngOfSvg, assertSvgShows, svgTexts } from '../helpers/charts';
import { tempDir } from '../helpers/temp_dir';

const BARS: ChartSpec = {
  title: 'Apples & pears',
  data: {
    values: [
      { fruit: 'apple', shop: 'north', kg: 3 },
      { fruit: 'pear', shop: 'north', kg: 5 },
      { fruit: 'apple', shop: 'a very long shop name indeed', kg: 4 },
    ],
  },
  width: 300,
  height: 200,
  encoding: {
    x: { field: 'shop', type: 'nominal', title: 'shop (name)', axis: { labelAngle: 0, labelLimit: 200 } },
    xOffset: { field: 'fruit' },
    y: { field: 'kg', type: 'quantitative', title: 'weight (kg)' },
  },
  layer: [
    { mark: 'bar', encoding: { color: { field: 'fruit', title: 'fruit' } } },
    { mark: { type: 'text', dy: -4 }, encoding: { text: { field: 'kg', format: '.1f' } } },
  ],
};

test('chart SVG: title, axis titles, tick labels, legend title and entries, value labels, in DejaVu Sans', async () => {
  const svg = await chartSvg(BARS);
  assertSvgShows(
    svg,
    ['Apples & pears', 'shop (name)', 'weight (kg)', 'north', 'fruit', 'apple', 'pear', '3.0', '5.0', '4.0'],
    'bars',
  );
  assert.ok(
    svgTexts(svg).includes('a very long shop name indeed'),
    'a long label within labelLimit is not cut (the 0.8 em guess would cut it at 200 px)',
  );
  assert.match(svg, /font-family="DejaVu Sans/);
  assert.match(svg, /<rect width="[\d.]+" height="[\d.]+" fill="white"\/>/, 'an opaque white background');
});

test('writeChart: the PNG and the SVG beside it, written whole; the PNG is the SVG at twice the size and not blank', async () => {
  const dir = tempDir('charts');
  try {
    const out = await writeChart(path.join(dir, 'sub', 'bars.png'), BARS);
    assert.deepEqual(out, { png: path.join(dir, 'sub', 'bars.png'), svg: path.join(dir, 'sub', 'bars.svg') });
    const svg = fs.readFileSync(out.svg, 'utf8');
    assertSvgShows(svg, ['Apples & pears'], 'bars.svg');
    await assertPngOfSvg(out.png, svg);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'sub')).sort(), ['bars.png', 'bars.svg'], 'no temp files left');
    await assert.rejects(writeChart(path.join(dir, 'bars.jpg'), BARS), /must end in \.png/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('charts never load data: a spec naming a URL fails', async () => {
  await assert.rejects(
    chartSvg({ ...BARS, data: { url: 'https://example.com/data.json' } } as ChartSpec),
    /data must be inline/,
  );
});

test('DejaVu Sans widths: W is wider than i, bold is wider than regular, width scales with the size', () => {
  assert.ok(dejaVuWidth('W', { fontSize: 10 }) > 2 * dejaVuWidth('i', { fontSize: 10 }));
  assert.ok(dejaVuWidth('accuracy', { fontSize: 12, fontWeight: 'bold' }) > dejaVuWidth('accuracy', { fontSize: 12 }));
  assert.equal(dejaVuWidth('0', { fontSize: 20 }), 2 * dejaVuWidth('0', { fontSize: 10 }));
  assert.equal(
    dejaVuWidth('中', { fontSize: 10 }),
    dejaVuWidth('0', { fontSize: 10 }),
    'unknown characters count as a digit',
  );
});
