// The normal look of each modality and anatomy, drawn at any size S (all geometry is in fractions
// of S). Strong, coarse cues on purpose: a tiny ViT sees 14-pixel patches.
import { Canvas, grey, type Rgb } from './canvas';
import type { Prng } from '../../util/prng';
import type { Modality } from './vocab';

type Draw = (c: Canvas, S: number, p: Prng) => void;

function ctBrain(c: Canvas, S: number, p: Prng): void {
  c.ellipse(S / 2, S / 2, 0.4 * S, 0.46 * S, grey(0.97));
  c.ellipse(S / 2, S / 2, 0.36 * S, 0.42 * S, grey(0.45));
  for (const side of [-1, 1])
    c.ellipse(S / 2 + side * 0.06 * S, S / 2, 0.035 * S, 0.11 * S, grey(0.15), 1, side * 0.25);
  c.ellipse(S / 2, S * (0.5 + p.range(-0.01, 0.01)), 0.01 * S, 0.3 * S, grey(0.6), 0.6);
}

function ctChest(c: Canvas, S: number): void {
  c.ellipse(S / 2, S / 2, 0.46 * S, 0.33 * S, grey(0.5));
  for (const side of [-1, 1]) c.ellipse(S / 2 + side * 0.2 * S, 0.47 * S, 0.14 * S, 0.2 * S, grey(0.07));
  c.ellipse(0.46 * S, 0.5 * S, 0.09 * S, 0.1 * S, grey(0.58));
  c.circle(S / 2, 0.74 * S, 0.05 * S, grey(0.95));
}

function ctAbdomen(c: Canvas, S: number, p: Prng): void {
  c.ellipse(S / 2, S / 2, 0.44 * S, 0.35 * S, grey(0.5));
  c.ellipse(0.34 * S, 0.44 * S, 0.17 * S, 0.15 * S, grey(0.62));
  for (const side of [-1, 1]) c.ellipse(S / 2 + side * 0.14 * S, 0.66 * S, 0.05 * S, 0.07 * S, grey(0.7));
  c.circle(S / 2, 0.74 * S, 0.045 * S, grey(0.95));
  for (let i = 0; i < 5; i++) c.circle(p.range(0.5, 0.7) * S, p.range(0.35, 0.55) * S, 0.02 * S, grey(0.05));
}

function mriBrain(c: Canvas, S: number, p: Prng): void {
  c.ellipse(S / 2, S / 2, 0.41 * S, 0.47 * S, grey(0.85));
  c.ellipse(S / 2, S / 2, 0.385 * S, 0.445 * S, grey(0.08));
  const ph = p.range(0, 6.3);
  c.blob(
    S / 2,
    S / 2,
    0.345 * S,
    [
      { k: 14, amp: 0.03, phase: ph },
      { k: 23, amp: 0.015, phase: ph * 2 },
    ],
    grey(0.68),
  );
  c.ellipse(S / 2, S / 2, 0.27 * S, 0.33 * S, grey(0.5));
  for (const side of [-1, 1])
    c.ellipse(S / 2 + side * 0.06 * S, S / 2, 0.035 * S, 0.11 * S, grey(0.95), 1, side * 0.25);
}

function mriKnee(c: Canvas, S: number): void {
  c.rect(0.22 * S, 0, 0.78 * S, S, grey(0.32));
  c.rect(0.32 * S, -0.1 * S, 0.68 * S, 0.45 * S, grey(0.1), 1, 0.1 * S);
  c.rect(0.34 * S, -0.1 * S, 0.66 * S, 0.43 * S, grey(0.78), 1, 0.09 * S);
  c.rect(0.33 * S, 0.53 * S, 0.67 * S, 1.1 * S, grey(0.1), 1, 0.06 * S);
  c.rect(0.35 * S, 0.55 * S, 0.65 * S, 1.1 * S, grey(0.74), 1, 0.05 * S);
  c.rect(0.3 * S, 0.455 * S, 0.7 * S, 0.515 * S, grey(0.9), 1, 0.02 * S);
}

function mriSpine(c: Canvas, S: number): void {
  c.rect(0.15 * S, 0, 0.85 * S, S, grey(0.3));
  for (let i = 0; i < 5; i++) {
    const y0 = (0.02 + i * 0.2) * S;
    c.rect(0.3 * S, y0, 0.55 * S, y0 + 0.15 * S, grey(0.62), 1, 0.02 * S);
    c.rect(0.31 * S, y0 + 0.155 * S, 0.54 * S, y0 + 0.195 * S, grey(0.92), 1, 0.015 * S);
  }
  c.rect(0.6 * S, 0, 0.7 * S, S, grey(0.85));
  c.rect(0.625 * S, 0, 0.675 * S, S, grey(0.2));
}

function xrayChest(c: Canvas, S: number): void {
  c.rect(0.06 * S, 0.1 * S, 0.94 * S, 1.05 * S, grey(0.55), 1, 0.12 * S);
  for (const side of [-1, 1]) c.ellipse(S / 2 + side * 0.2 * S, 0.5 * S, 0.15 * S, 0.3 * S, grey(0.16));
  c.ellipse(0.45 * S, 0.62 * S, 0.13 * S, 0.16 * S, grey(0.72));
  c.rect(0.46 * S, 0.1 * S, 0.54 * S, S, grey(0.8));
  for (const side of [-1, 1]) {
    for (let i = 0; i < 6; i++) {
      const y = (0.25 + i * 0.09) * S;
      const pts: [number, number][] = [];
      for (let k = 0; k <= 8; k++) {
        const t = k / 8;
        pts.push([S / 2 + side * (0.05 + 0.33 * t) * S, y + 0.06 * S * Math.sin(Math.PI * t)]);
      }
      c.polyline(pts, 0.025 * S, grey(0.85), 0.35);
    }
    c.polyline(
      [
        [S / 2, 0.16 * S],
        [S / 2 + side * 0.34 * S, 0.12 * S],
      ],
      0.035 * S,
      grey(0.9),
      0.8,
    );
  }
}

function xrayHand(c: Canvas, S: number): void {
  c.rect(0.25 * S, 0.52 * S, 0.78 * S, 1.05 * S, grey(0.4), 1, 0.08 * S);
  const xs = [0.3, 0.41, 0.52, 0.63, 0.8];
  const tops = [0.14, 0.07, 0.05, 0.1, 0.4];
  for (let i = 0; i < 5; i++) {
    const x = xs[i] * S;
    c.rect(x - 0.045 * S, tops[i] * S, x + 0.045 * S, 0.7 * S, grey(0.4), 1, 0.04 * S);
    for (let k = 0; k < 3; k++) {
      const y0 = (tops[i] + 0.02 + (k * (0.6 - tops[i])) / 3) * S;
      c.rect(x - 0.022 * S, y0, x + 0.022 * S, y0 + ((0.6 - tops[i]) / 3 - 0.025) * S, grey(0.85), 1, 0.01 * S);
    }
  }
}

function xrayKnee(c: Canvas, S: number): void {
  c.rect(0.25 * S, 0, 0.75 * S, S, grey(0.38), 1, 0.05 * S);
  c.rect(0.36 * S, -0.1 * S, 0.64 * S, 0.46 * S, grey(0.85), 1, 0.1 * S);
  c.rect(0.37 * S, 0.52 * S, 0.63 * S, 1.1 * S, grey(0.85), 1, 0.05 * S);
  c.ellipse(0.66 * S, 0.4 * S, 0.06 * S, 0.08 * S, grey(0.8));
}

/** The ultrasound sector: apex at the top centre, 50° either side. */
export function inFan(x: number, y: number, S: number): boolean {
  const dx = x - S / 2;
  const dy = y - 0.06 * S;
  const r = Math.hypot(dx, dy);
  return dy > 0 && r > 0.1 * S && r < 0.95 * S && Math.abs(Math.atan2(dx, dy)) < (50 * Math.PI) / 180;
}

function usBase(c: Canvas, S: number): void {
  c.fillSdf(0, 0, S, S, (x, y) => (inFan(x, y, S) ? -1 : 1), grey(0.45));
}

function usKidney(c: Canvas, S: number): void {
  usBase(c, S);
  c.ellipse(S / 2, 0.56 * S, 0.3 * S, 0.17 * S, grey(0.25), 1, 0.1);
  c.ellipse(S / 2, 0.56 * S, 0.16 * S, 0.06 * S, grey(0.85), 1, 0.1);
}

function usLiver(c: Canvas, S: number, p: Prng): void {
  usBase(c, S);
  c.ellipse(S / 2, 0.6 * S, 0.4 * S, 0.28 * S, grey(0.58));
  for (let i = 0; i < 4; i++) c.circle(p.range(0.35, 0.65) * S, p.range(0.45, 0.75) * S, 0.025 * S, grey(0.05));
}

function usBladder(c: Canvas, S: number): void {
  usBase(c, S);
  c.rect(0.3 * S, 0.35 * S, 0.7 * S, 0.75 * S, grey(0.9), 1, 0.12 * S);
  c.rect(0.32 * S, 0.37 * S, 0.68 * S, 0.73 * S, grey(0.04), 1, 0.11 * S);
}

function dermoscopy(c: Canvas, S: number, p: Prng): void {
  const skin: Rgb = [0.88, 0.68, 0.58];
  c.circle(S / 2, S / 2, 0.49 * S, skin);
  for (let i = 0; i < 3; i++) {
    const x0 = p.range(0.1, 0.9) * S;
    const pts: [number, number][] = [];
    for (let k = 0; k <= 6; k++) pts.push([x0 + k * 0.05 * S, (0.1 + k * 0.13) * S + p.range(-0.02, 0.02) * S]);
    c.polyline(pts, 0.008 * S, [0.3, 0.2, 0.15], 0.7);
  }
}

function fundus(c: Canvas, S: number, p: Prng): void {
  c.circle(S / 2, S / 2, 0.46 * S, [0.82, 0.36, 0.14]);
  const discX = p.next() < 0.5 ? 0.3 : 0.7;
  const macX = 1 - discX;
  c.circle(macX * S, 0.5 * S, 0.06 * S, [0.55, 0.18, 0.07], 0.7);
  for (const dir of [-1, 1]) {
    for (const spread of [0.14, 0.24]) {
      const pts: [number, number][] = [];
      for (let k = 0; k <= 10; k++) {
        const t = k / 10;
        const x = discX + (macX - discX) * t * 0.9;
        pts.push([x * S, (0.5 + dir * spread * Math.sin(Math.PI * Math.min(1, t * 1.2)) * (0.6 + 0.4 * t)) * S]);
      }
      c.polyline(pts, 0.016 * S, [0.55, 0.1, 0.06], 0.9);
    }
  }
  c.circle(discX * S, 0.5 * S, 0.07 * S, [0.98, 0.88, 0.6]);
}

/** Top and bottom of the OCT retina band at column x (fraction of S), with the foveal pit. */
export function octBand(xf: number): [number, number] {
  const pit = 0.07 * Math.exp(-(((xf - 0.5) / 0.08) ** 2));
  return [0.3 + pit, 0.68];
}

function oct(c: Canvas, S: number): void {
  // Layers from inner to outer retina: bright nerve fibre layer, darker nuclear layers, bright RPE.
  const layers: [number, number][] = [
    [0.0, 0.85],
    [0.08, 0.45],
    [0.3, 0.6],
    [0.48, 0.3],
    [0.72, 0.5],
    [0.86, 0.95],
  ];
  for (let x = 0; x < S; x++) {
    const [top, bottom] = octBand((x + 0.5) / S);
    for (let y = 0; y < S; y++) {
      const yf = (y + 0.5) / S;
      let v = 0.05;
      if (yf >= top && yf < bottom) {
        const t = (yf - top) / (bottom - top);
        for (const [start, val] of layers) if (t >= start) v = val;
      } else if (yf >= bottom && yf < bottom + 0.12) {
        v = 0.45 * (1 - (yf - bottom) / 0.12);
      }
      c.blend(x, y, grey(v), 1);
    }
  }
}

const ANATOMY_DRAW: Record<string, Draw> = {
  'CT/Brain': ctBrain,
  'CT/Chest': ctChest,
  'CT/Abdomen': ctAbdomen,
  'MRI/Brain': mriBrain,
  'MRI/Knee': mriKnee,
  'MRI/Spine': mriSpine,
  'X-Ray/Chest': xrayChest,
  'X-Ray/Hand': xrayHand,
  'X-Ray/Knee': xrayKnee,
  'Ultrasound/Kidney': usKidney,
  'Ultrasound/Liver': usLiver,
  'Ultrasound/Bladder': usBladder,
  'Dermoscopy/Skin': dermoscopy,
  'Fundus photography/Retina': fundus,
  'OCT/Macula': oct,
};

const BACKGROUND: Partial<Record<Modality, Rgb>> = {
  'X-Ray': grey(0.12),
  Dermoscopy: [0.05, 0.04, 0.04],
};

export function drawAnatomy(modality: Modality, anatomy: string, S: number, prng: Prng): Canvas {
  const draw = ANATOMY_DRAW[`${modality}/${anatomy}`];
  if (!draw) throw new Error(`MedSynth: no renderer for ${modality} ${anatomy}`);
  const c = new Canvas(S, S, BACKGROUND[modality] ?? [0, 0, 0]);
  draw(c, S, prng);
  return c;
}

/** The acquisition's texture, drawn over anatomy and lesion alike (its own random stream). */
export function postprocess(modality: Modality, c: Canvas, prng: Prng): void {
  const S = c.width;
  switch (modality) {
    case 'CT':
      c.noise(prng, 0.025);
      break;
    case 'MRI':
      c.multiply((x, y) => 0.85 + 0.3 * ((x + y) / (2 * S)));
      c.noise(prng, 0.02);
      break;
    case 'X-Ray':
      c.blur(1);
      c.multiply((x, y) => 1 - (0.35 * (((x / S - 0.5) * 2) ** 2 + ((y / S - 0.5) * 2) ** 2)) / 2);
      c.noise(prng, 0.015);
      break;
    case 'Ultrasound': {
      // Multiplicative speckle (exponential intensity), softened, then depth attenuation.
      const sp = new Float32Array(S * S);
      for (let i = 0; i < sp.length; i++) sp[i] = -Math.log(Math.max(1e-6, 1 - prng.next()));
      c.multiply((x, y) => (inFan(x, y, S) ? 0.35 + 0.65 * sp[y * S + x] : 0));
      c.blur(1);
      c.multiply((x, y) => 1 - 0.45 * (y / S));
      break;
    }
    case 'Dermoscopy':
      c.noise(prng, 0.02, false);
      break;
    case 'Fundus photography':
      c.multiply((x, y) => {
        const r = Math.hypot(x - S / 2, y - S / 2) / (0.46 * S);
        return r > 1.02 ? 0 : 1 - 0.35 * r * r;
      });
      c.noise(prng, 0.015, false);
      break;
    case 'OCT': {
      const sp = new Float32Array(S * S);
      for (let i = 0; i < sp.length; i++) sp[i] = -Math.log(Math.max(1e-6, 1 - prng.next()));
      c.multiply((x, y) => 0.5 + 0.5 * sp[y * S + x]);
      c.blur(1);
      break;
    }
    case 'Microscopy':
      c.noise(prng, 0.015, false);
      break;
  }
}
