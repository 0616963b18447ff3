// A blood smear: pale red cells everywhere, 1-4 white cells with dark purple nuclei (the count
// question), and a diffuse disease: ring parasites inside red cells (malaria), sickled red cells,
// or blast white cells with one huge dark nucleus (leukemia).
import { Canvas, type Rgb } from './canvas';
import type { Prng } from '../../util/prng';

export const NUCLEUS: Rgb = [0.35, 0.12, 0.5];
export const BLAST_NUCLEUS: Rgb = [0.25, 0.08, 0.4];
const RBC: Rgb = [0.86, 0.45, 0.5];
const RBC_CENTRE: Rgb = [0.93, 0.72, 0.74];
const SICKLE: Rgb = [0.8, 0.35, 0.4];
const PARASITE: Rgb = [0.4, 0.1, 0.45];
const CYTOPLASM: Rgb = [0.78, 0.62, 0.82];

export function drawSmear(S: number, disease: string, wbcCount: number, prng: Prng): Canvas {
  const c = new Canvas(S, S, [0.94, 0.86, 0.88]);
  // White cells first in the plan (far apart, so their nuclei stay separate), last on the canvas.
  const wbcs: [number, number][] = [];
  for (let tries = 0; wbcs.length < wbcCount && tries < 1000; tries++) {
    const x = prng.range(0.16, 0.84) * S;
    const y = prng.range(0.16, 0.84) * S;
    if (wbcs.every(([a, b]) => Math.hypot(a - x, b - y) > 0.26 * S)) wbcs.push([x, y]);
  }
  if (wbcs.length < wbcCount) throw new Error(`MedSynth: could not place ${wbcCount} white cells`);

  const nRbc = Math.round(26 * (S / 112) ** 2);
  for (let i = 0; i < nRbc; i++) {
    const x = prng.range(0.03, 0.97) * S;
    const y = prng.range(0.03, 0.97) * S;
    const sickled = disease === 'Sickle cell' && prng.next() < 0.45;
    if (sickled) {
      c.ellipse(x, y, 0.075 * S, 0.024 * S, SICKLE, 1, prng.range(0, Math.PI));
      continue;
    }
    c.circle(x, y, 0.05 * S, RBC, 0.9);
    c.circle(x, y, 0.022 * S, RBC_CENTRE, 0.7);
    if (disease === 'Malaria' && prng.next() < 0.4) {
      c.circle(x + 0.02 * S, y - 0.012 * S, Math.max(1.2, 0.014 * S), PARASITE, 1);
    }
  }
  for (const [x, y] of wbcs) {
    if (disease === 'Leukemia') {
      c.circle(x, y, 0.088 * S, CYTOPLASM);
      c.circle(x, y, 0.062 * S, BLAST_NUCLEUS);
    } else {
      c.circle(x, y, 0.078 * S, CYTOPLASM);
      const ph = prng.range(0, 2 * Math.PI);
      for (let k = 0; k < 3; k++) {
        const a = ph + (k * 2 * Math.PI) / 3;
        c.circle(x + 0.024 * S * Math.cos(a), y + 0.024 * S * Math.sin(a), 0.03 * S, NUCLEUS);
      }
    }
  }
  return c;
}
