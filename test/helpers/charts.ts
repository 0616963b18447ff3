// Checks on rendered charts: the texts an SVG shows, and a PNG that is the SVG's size (times the
// PNG scale) with something drawn on it.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import sharp from 'sharp';
import { PNG_SCALE, svgSize } from '../../src/report/charts';

/** Every <text> element's content, unescaped, in document order. */
export function svgTexts(svg: string): string[] {
  const unescape = (s: string) =>
    s
      .replace(/&lt;/g, '<')
      .replace(/&gt;/g, '>')
      .replace(/&quot;/g, '"')
      .replace(/&#39;/g, "'")
      .replace(/&amp;/g, '&');
  return [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => unescape(m[1]));
}

export function assertSvgShows(svg: string, texts: string[], what: string): void {
  const shown = new Set(svgTexts(svg));
  for (const t of texts)
    assert.ok(shown.has(t), `${what}: the SVG shows no text '${t}' (it shows: ${[...shown].join(' | ')})`);
}

/** The PNG is the SVG's size times PNG_SCALE, opaque white around dark text and coloured marks. */
export async function assertPngOfSvg(pngFile: string, svg: string): Promise<void> {
  const { width, height } = svgSize(svg);
  const img = sharp(fs.readFileSync(pngFile));
  const meta = await img.metadata();
  assert.equal(meta.width, Math.round(width * PNG_SCALE), `${pngFile}: width`);
  assert.equal(meta.height, Math.round(height * PNG_SCALE), `${pngFile}: height`);
  const { data, info } = await img.removeAlpha().raw().toBuffer({ resolveWithObject: true });
  let white = 0;
  let dark = 0;
  let coloured = 0;
  for (let i = 0; i < data.length; i += info.channels) {
    const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
    if (r > 250 && g > 250 && b > 250) white++;
    if (r < 60 && g < 60 && b < 60) dark++;
    if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
  }
  const n = data.length / info.channels;
  assert.ok(white > n * 0.3, `${pngFile}: mostly white background (${white}/${n})`);
  assert.ok(dark > n * 0.002, `${pngFile}: dark pixels of text (${dark}/${n})`);
  assert.ok(coloured > n * 0.002, `${pngFile}: coloured marks (${coloured}/${n})`);
}
