// A tiny float RGB raster with the few primitives MedSynth draws with: soft-edged ellipses and
// polygons blended at an opacity, thick polylines, per-pixel noise, box blur. Coordinates are in
// pixels; colours are [r, g, b] in 0..1. Everything is plain loops so the output is bit-stable.
import type { Prng } from '../../util/prng';

export type Rgb = readonly [number, number, number];

export const grey = (v: number): Rgb => [v, v, v];

export class Canvas {
  readonly data: Float32Array;

  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [0, 0, 0],
  ) {
    this.data = new Float32Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, 3 * i);
  }

  /** Blends `color` into pixel (x, y) with opacity a. */
  blend(x: number, y: number, color: Rgb, a: number): void {
    if (a <= 0 || x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = 3 * (y * this.width + x);
    const d = this.data;
    d[o] += (color[0] - d[o]) * a;
    d[o + 1] += (color[1] - d[o + 1]) * a;
    d[o + 2] += (color[2] - d[o + 2]) * a;
  }

  /**
   * Fills the region where `inside(x, y)` (a signed distance in pixels, negative inside) is below
   * zero, with a 1-pixel anti-aliased edge, over the bounding box [x0, x1) × [y0, y1).
   */
  fillSdf(
    x0: number,
    y0: number,
    x1: number,
    y1: number,
    sdf: (x: number, y: number) => number,
    color: Rgb,
    alpha = 1,
  ): void {
    const xa = Math.max(0, Math.floor(x0));
    const ya = Math.max(0, Math.floor(y0));
    const xb = Math.min(this.width, Math.ceil(x1));
    const yb = Math.min(this.height, Math.ceil(y1));
    for (let y = ya; y < yb; y++) {
      for (let x = xa; x < xb; x++) {
        const d = sdf(x + 0.5, y + 0.5);
        const cover = d <= -0.5 ? 1 : d >= 0.5 ? 0 : 0.5 - d;
        if (cover > 0) this.blend(x, y, color, alpha * cover);
      }
    }
  }

  /** Axis-aligned or rotated ellipse (angle in radians). */
  ellipse(cx: number, cy: number, rx: number, ry: number, color: Rgb, alpha = 1, angle = 0): void {
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const r = Math.max(rx, ry) + 1;
    this.fillSdf(
      cx - r,
      cy - r,
      cx + r,
      cy + r,
      (x, y) => {
        const dx = x - cx;
        const dy = y - cy;
        const u = (dx * c + dy * s) / rx;
        const v = (-dx * s + dy * c) / ry;
        // Approximate signed distance: radial distance scaled by the smaller radius.
        return (Math.sqrt(u * u + v * v) - 1) * Math.min(rx, ry);
      },
      color,
      alpha,
    );
  }

  circle(cx: number, cy: number, r: number, color: Rgb, alpha = 1): void {
    this.ellipse(cx, cy, r, r, color, alpha);
  }

  /** A disc whose radius varies with angle: r(θ) = r · (1 + Σ amp·sin(k·θ + phase)). */
  blob(
    cx: number,
    cy: number,
    r: number,
    harmonics: readonly { k: number; amp: number; phase: number }[],
    color: Rgb,
    alpha = 1,
  ): void {
    const maxR = r * (1 + harmonics.reduce((s, h) => s + Math.abs(h.amp), 0)) + 1;
    this.fillSdf(
      cx - maxR,
      cy - maxR,
      cx + maxR,
      cy + maxR,
      (x, y) => {
        const dx = x - cx;
        const dy = y - cy;
        const th = Math.atan2(dy, dx);
        let rr = 1;
        for (const h of harmonics) rr += h.amp * Math.sin(h.k * th + h.phase);
        return Math.sqrt(dx * dx + dy * dy) - r * rr;
      },
      color,
      alpha,
    );
  }

  rect(x0: number, y0: number, x1: number, y1: number, color: Rgb, alpha = 1, radius = 0): void {
    const cx = (x0 + x1) / 2;
    const cy = (y0 + y1) / 2;
    const hx = (x1 - x0) / 2 - radius;
    const hy = (y1 - y0) / 2 - radius;
    this.fillSdf(
      x0 - 1,
      y0 - 1,
      x1 + 1,
      y1 + 1,
      (x, y) => {
        const qx = Math.abs(x - cx) - hx;
        const qy = Math.abs(y - cy) - hy;
        const out = Math.hypot(Math.max(qx, 0), Math.max(qy, 0));
        return out + Math.min(Math.max(qx, qy), 0) - radius;
      },
      color,
      alpha,
    );
  }

  /** A thick polyline through the points. */
  polyline(points: readonly [number, number][], width: number, color: Rgb, alpha = 1): void {
    const h = width / 2;
    for (let i = 0; i + 1 < points.length; i++) {
      const [ax, ay] = points[i];
      const [bx, by] = points[i + 1];
      const vx = bx - ax;
      const vy = by - ay;
      const len2 = vx * vx + vy * vy || 1;
      this.fillSdf(
        Math.min(ax, bx) - h - 1,
        Math.min(ay, by) - h - 1,
        Math.max(ax, bx) + h + 1,
        Math.max(ay, by) + h + 1,
        (x, y) => {
          const t = Math.max(0, Math.min(1, ((x - ax) * vx + (y - ay) * vy) / len2));
          return Math.hypot(x - ax - t * vx, y - ay - t * vy) - h;
        },
        color,
        alpha,
      );
    }
  }

  /** Adds N(0, sigma²) to every channel (same draw on all three when `mono`). */
  noise(prng: Prng, sigma: number, mono = true, mask?: (x: number, y: number) => boolean): void {
    const d = this.data;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const o = 3 * (y * this.width + x);
        if (mono) {
          const n = sigma * prng.normal();
          if (mask && !mask(x, y)) continue;
          d[o] += n;
          d[o + 1] += n;
          d[o + 2] += n;
        } else {
          const n0 = sigma * prng.normal();
          const n1 = sigma * prng.normal();
          const n2 = sigma * prng.normal();
          if (mask && !mask(x, y)) continue;
          d[o] += n0;
          d[o + 1] += n1;
          d[o + 2] += n2;
        }
      }
    }
  }

  /** Multiplies each pixel by f(x, y) (gain fields, vignettes, speckle). */
  multiply(f: (x: number, y: number) => number): void {
    const d = this.data;
    for (let y = 0; y < this.height; y++) {
      for (let x = 0; x < this.width; x++) {
        const m = f(x, y);
        const o = 3 * (y * this.width + x);
        d[o] *= m;
        d[o + 1] *= m;
        d[o + 2] *= m;
      }
    }
  }

  /** Separable box blur of radius r (r = 1: 3×3), edges clamped. */
  blur(r: number): void {
    if (r <= 0) return;
    const { width: W, height: H, data: d } = this;
    const tmp = new Float32Array(d.length);
    const n = 2 * r + 1;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let k = -r; k <= r; k++) s += d[3 * (y * W + Math.min(W - 1, Math.max(0, x + k))) + c];
          tmp[3 * (y * W + x) + c] = s / n;
        }
      }
    }
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        for (let c = 0; c < 3; c++) {
          let s = 0;
          for (let k = -r; k <= r; k++) s += tmp[3 * (Math.min(H - 1, Math.max(0, y + k)) * W + x) + c];
          d[3 * (y * W + x) + c] = s / n;
        }
      }
    }
  }

  /** 8-bit RGB, clamped and rounded. */
  toRgb8(): Uint8Array {
    const out = new Uint8Array(this.data.length);
    for (let i = 0; i < out.length; i++) {
      const v = Math.round(this.data[i] * 255);
      out[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    return out;
  }
}
