// Draws one localized finding. Every style stays inside the disc of the lesion's radius, so
// "present", "where" and "how large" can be checked from pixels (test/data/medsynth.test.ts renders each
// image with and without its lesion and compares).
import type { Canvas } from './canvas';
import type { Prng } from '../../util/prng';
import type { Lesion } from './truth';
import type { FindingSpec } from './vocab';

export function drawLesion(canvas: Canvas, spec: FindingSpec, lesion: Lesion, prng: Prng): void {
  const { cx, cy, radius: r } = lesion;
  switch (spec.style) {
    case 'solid': {
      // A contrasting rim keeps the lesion visible on any anatomy (a dark cyst over a dark bladder).
      const e = prng.range(0.9, 1);
      const angle = prng.range(0, Math.PI);
      const lum = (spec.color[0] + spec.color[1] + spec.color[2]) / 3;
      const rim = spec.inner ?? (lum < 0.5 ? ([0.85, 0.85, 0.85] as const) : ([0.08, 0.08, 0.08] as const));
      canvas.ellipse(cx, cy, r * e, r / (2 - e), rim, 0.95, angle);
      const w = Math.max(1.2, 0.2 * r);
      canvas.ellipse(cx, cy, r * e - w, r / (2 - e) - w, spec.color, 0.95, angle);
      break;
    }
    case 'ring':
      canvas.circle(cx, cy, r, spec.color, 0.95);
      canvas.circle(cx, cy, r * 0.55, spec.inner ?? spec.color, 0.95);
      break;
    case 'hazy': {
      const phase = prng.range(0, 2 * Math.PI);
      for (let y = Math.floor(cy - r); y <= Math.ceil(cy + r); y++) {
        for (let x = Math.floor(cx - r); x <= Math.ceil(cx + r); x++) {
          const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy) / r;
          if (d >= 1) continue;
          const texture = 0.8 + 0.2 * Math.sin(x * 0.9 + phase) * Math.cos(y * 0.7 - phase);
          canvas.blend(x, y, spec.color, 0.9 * (1 - d * d) * texture);
        }
      }
      break;
    }
    case 'spotted': {
      canvas.circle(cx, cy, r, spec.color, 0.4);
      const dotR = Math.max(1.3, 0.018 * canvas.width);
      const n = Math.round(4 + 14 * (r / (0.125 * canvas.width)) ** 2);
      for (let i = 0; i < n; i++) {
        const rho = (r - dotR) * Math.sqrt(prng.next());
        const th = prng.range(0, 2 * Math.PI);
        canvas.circle(cx + rho * Math.cos(th), cy + rho * Math.sin(th), dotR, spec.color, 1);
      }
      break;
    }
    case 'irregular': {
      const harmonics = [
        { k: 3, amp: 0.12, phase: prng.range(0, 6.3) },
        { k: 5, amp: 0.08, phase: prng.range(0, 6.3) },
        { k: 7, amp: 0.05, phase: prng.range(0, 6.3) },
      ];
      canvas.blob(cx, cy, r / 1.25, harmonics, spec.color, 0.95);
      const n = 2 + prng.int(3);
      for (let i = 0; i < n; i++) {
        const rho = 0.4 * r * prng.next();
        const th = prng.range(0, 2 * Math.PI);
        canvas.circle(cx + rho * Math.cos(th), cy + rho * Math.sin(th), 0.25 * r, spec.inner ?? spec.color, 0.6);
      }
      break;
    }
  }
}
