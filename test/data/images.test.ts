// Images: every format decodes; the Qwen2-VL size rule on a table worked from HF's code; the
// TypeScript bicubic equals Pillow's on committed fixtures; patches come out in HF's order.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { decodeBmp } from '../../src/data/images/bmp';
import { ResizedImageCache } from '../../src/data/images/cache';
import { decodeImage, decodeImageFile } from '../../src/data/images/decode';
import { CLIP_MEAN, CLIP_STD, imageTokenCount, normalizationTable, patchify } from '../../src/data/images/patchify';
import { processImageFile } from '../../src/data/images/processor';
import { resizeBicubicPil } from '../../src/data/images/resample_pil';
import { resizeRgb } from '../../src/data/images/resize';
import { smartResize } from '../../src/data/images/smart_resize';
import type { RgbImage } from '../../src/data/images/types';
import { assertClose, rng } from '../helpers/numeric';
import { repoRoot } from '../helpers/cli';
import { tempDir } from '../helpers/temp_dir';

const tmp = tempDir('images');

function randomImage(width: number, height: number, seed: number): RgbImage {
  const r = rng(seed);
  return { width, height, data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(r() * 256)) };
}

const raw = (img: RgbImage) => sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });

test('PNG, TIFF and lossless WebP decode to the exact pixels; JPEG closely', async () => {
  const img = randomImage(13, 7, 1);
  const cases: [string, Buffer, number][] = [
    ['x.png', await raw(img).png().toBuffer(), 0],
    ['x.tiff', await raw(img).tiff({ compression: 'lzw' }).toBuffer(), 0],
    ['x.webp', await raw(img).webp({ lossless: true }).toBuffer(), 0],
  ];
  for (const [name, bytes, tol] of cases) {
    const out = await decodeImage(bytes, name);
    assert.equal(out.width, 13, name);
    assert.equal(out.height, 7, name);
    assertClose(out.data, img.data, { atol: tol, rtol: 0, what: name });
  }
  // JPEG is lossy: a smooth image at quality 100 comes back within a few levels.
  const smooth: RgbImage = { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3) };
  for (let i = 0; i < 256; i++) smooth.data.set([i, 255 - i, 128], 3 * i);
  const jpeg = await raw(smooth).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toBuffer();
  const out = await decodeImage(jpeg, 'x.jpg');
  assertClose(out.data, smooth.data, { atol: 6, rtol: 0, what: 'jpeg' });
});

test('grey PNG becomes RGB; transparency is composited on white', async () => {
  const grey = await sharp(Uint8Array.from([0, 50, 100, 250]), { raw: { width: 2, height: 2, channels: 1 } })
    .png()
    .toBuffer();
  assert.deepEqual(
    Array.from((await decodeImage(grey, 'g.png')).data),
    [0, 0, 0, 50, 50, 50, 100, 100, 100, 250, 250, 250],
  );
  const rgba = Uint8Array.from([200, 0, 0, 255, 200, 0, 0, 0, 200, 0, 0, 128, 0, 0, 0, 255]);
  const png = await sharp(rgba, { raw: { width: 4, height: 1, channels: 4 } })
    .png()
    .toBuffer();
  const out = Array.from((await decodeImage(png, 'a.png')).data);
  assert.deepEqual(out.slice(0, 6), [200, 0, 0, 255, 255, 255]);
  // Half transparent red over white: (200·128 + 255·127)/255 ≈ 227, 127.
  assertClose(out.slice(6, 9), [227, 127, 127], { atol: 1, rtol: 0, what: 'alpha' });
});

test('a damaged image errors with its name on one line', async () => {
  const png = await raw(randomImage(32, 32, 2))
    .png()
    .toBuffer();
  const file = path.join(tmp, 'broken.png');
  fs.writeFileSync(file, png.subarray(0, png.length >> 1));
  await assert.rejects(
    decodeImageFile(file),
    (e: Error) => e.message.startsWith(`${file}: cannot decode image`) && !e.message.includes('\n'),
  );
  await assert.rejects(decodeImageFile(path.join(tmp, 'missing.png')), /missing\.png: cannot read image \(ENOENT\)/);
});

/** A BMP file written by hand: 14-byte file header, 40-byte info header (+ masks), palette, rows. */
function bmpFile(
  width: number,
  height: number,
  bpp: number,
  rows: number[][],
  opts: { palette?: number[][]; masks?: number[] } = {},
): Uint8Array {
  const rowBytes = Math.floor((bpp * width + 31) / 32) * 4;
  const palette = opts.palette ?? [];
  const masks = opts.masks ?? [];
  const header = 14 + 40 + masks.length * 4 + palette.length * 4;
  const buf = Buffer.alloc(header + rowBytes * Math.abs(height));
  buf.write('BM', 0, 'ascii');
  buf.writeUInt32LE(buf.length, 2);
  buf.writeUInt32LE(header, 10);
  buf.writeUInt32LE(40, 14);
  buf.writeInt32LE(width, 18);
  buf.writeInt32LE(height, 22);
  buf.writeUInt16LE(1, 26);
  buf.writeUInt16LE(bpp, 28);
  buf.writeUInt32LE(masks.length ? 3 : 0, 30);
  buf.writeUInt32LE(palette.length, 46);
  masks.forEach((m, i) => buf.writeUInt32LE(m, 54 + 4 * i));
  palette.forEach(([r, g, b], i) => buf.set([b, g, r, 0], 54 + masks.length * 4 + 4 * i));
  rows.forEach((bytes, i) => buf.set(bytes, header + i * rowBytes));
  return buf;
}

test('BMP: 24-bit bottom-up with row padding, 8-bit palette, 32-bit bitfields top-down', async () => {
  // 3×2 24-bit: file rows are bottom-up, BGR, padded from 9 to 12 bytes.
  const bmp24 = bmpFile(3, 2, 24, [
    [3, 2, 1, 6, 5, 4, 9, 8, 7], // bottom row: (1,2,3) (4,5,6) (7,8,9)
    [30, 20, 10, 60, 50, 40, 90, 80, 70], // top row
  ]);
  const a = await decodeImage(bmp24, 'a.bmp');
  assert.deepEqual(Array.from(a.data), [10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3, 4, 5, 6, 7, 8, 9]);

  const bmp8 = bmpFile(2, 1, 8, [[1, 0]], {
    palette: [
      [255, 0, 0],
      [0, 0, 255],
    ],
  });
  assert.deepEqual(Array.from(decodeBmp(bmp8, 'b.bmp').data), [0, 0, 255, 255, 0, 0]);

  // Top-down (negative height), masks R=0x0000FF00, G=0x00FF0000, B=0xFF000000 (unusual on purpose).
  const px = (r: number, g: number, b: number) => [0, r, g, b];
  const bmp32 = bmpFile(
    2,
    -2,
    32,
    [
      [...px(1, 2, 3), ...px(4, 5, 6)],
      [...px(7, 8, 9), ...px(10, 11, 12)],
    ],
    {
      masks: [0x0000ff00, 0x00ff0000, 0xff000000],
    },
  );
  assert.deepEqual(Array.from(decodeBmp(bmp32, 'c.bmp').data), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);

  assert.throws(() => decodeBmp(bmp24.subarray(0, 60), 'short.bmp'), /short\.bmp: .*truncated/);
  const rle = Buffer.from(bmp8);
  rle.writeUInt32LE(1, 30);
  assert.throws(() => decodeBmp(rle, 'rle.bmp'), /rle\.bmp: .*compression 1/);
});

test('smartResize on a table worked from the HF rule', () => {
  // [height, width, options] → [height, width], each worked by hand from transformers' smart_resize.
  const table: [number, number, object, [number, number]][] = [
    [448, 448, {}, [448, 448]], // already multiples of 28
    [500, 375, {}, [504, 364]], // 17.86 → 18, 13.39 → 13
    [42, 70, {}, [56, 56]], // 1.5 and 2.5 factors: Python rounds half to even → 2 and 2
    [100, 30, {}, [112, 28]], // 3.57 → 4, 1.07 → 1; 112·28 = 3136 = minPixels
    [10, 10, {}, [56, 56]], // rounds to 0: scaled up, β = √(3136/100) = 5.6 → ceil(2) · 28
    [512, 512, {}, [504, 504]], // 18.29 → 18
    [4000, 3000, {}, [1148, 840]], // over maxPixels: β = √(12e6/1003520) = 3.458; ⌊41.3⌋, ⌊30.98⌋
    [1080, 1920, {}, [728, 1316]], // β = 1.4375: ⌊26.8⌋ · 28, ⌊47.7⌋ · 28
    [20, 3000, {}, [28, 2996]], // 0.71 → 1, 107.1 → 107
    [28, 5600, {}, [28, 5600]], // aspect ratio exactly 200 is allowed
    [1000, 1000, { maxPixels: 6272 }, [56, 56]], // β = 12.63: ⌊2.83⌋ · 28
    [300, 200, { minPixels: 200000 }, [560, 392]], // β = 1.826: ⌈19.6⌉ · 28, ⌈13.04⌉ · 28
  ];
  for (const [h, w, opts, want] of table)
    assert.deepEqual(smartResize(h, w, opts), want, `${h}x${w} ${JSON.stringify(opts)}`);
  assert.throws(() => smartResize(28, 5601), /aspect ratio 200\.0 is above 200/);
});

test('the TypeScript bicubic equals Pillow bit for bit (fixtures made by Pillow)', () => {
  const fixture = JSON.parse(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'pil_bicubic.json'), 'utf8'));
  for (const c of fixture.cases) {
    const img: RgbImage = { width: c.width, height: c.height, data: new Uint8Array(c.width * c.height * 3) };
    for (let y = 0; y < c.height; y++)
      for (let x = 0; x < c.width; x++)
        for (let ch = 0; ch < 3; ch++)
          img.data[3 * (y * c.width + x) + ch] = (x * 37 + y * 91 + ch * 53 + ((x * y) % 7) * 11) & 255;
    const out = resizeBicubicPil(img, c.outWidth, c.outHeight);
    assert.deepEqual(
      Buffer.from(out.data),
      Buffer.from(c.rgbBase64, 'base64'),
      `${c.width}x${c.height} -> ${c.outWidth}x${c.outHeight}`,
    );
  }
});

test('the sharp path (shrinking up to 4x) stays within 2 grey levels of the Pillow twin', async () => {
  const img: RgbImage = { width: 157, height: 131, data: new Uint8Array(157 * 131 * 3) };
  for (let y = 0; y < 131; y++)
    for (let x = 0; x < 157; x++)
      for (let c = 0; c < 3; c++)
        img.data[3 * (y * 157 + x) + c] = Math.round(127 + 100 * Math.sin(x / 7 + c) * Math.cos(y / 11));
  for (const [w, h] of [
    [140, 112],
    [84, 56],
    [56, 56],
  ]) {
    const fast = await resizeRgb(img, w, h);
    assertClose(fast.data, resizeBicubicPil(img, w, h).data, { atol: 2, rtol: 0, what: `${w}x${h}` });
  }
});

test('normalization: CLIP mean/std after /255', () => {
  const lut = normalizationTable();
  for (let c = 0; c < 3; c++) {
    for (const v of [0, 1, 128, 255])
      assertClose([lut[c * 256 + v]], [(v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]], { rtol: 1e-6, what: `c${c} v${v}` });
  }
});

/** HF's patchify written literally: the 9-D reshape and transpose as index arithmetic. */
function patchifyReference(img: RgbImage): Float32Array {
  const lut = normalizationTable();
  const [P, M, T, C] = [14, 2, 2, 3];
  const gh = img.height / P;
  const gw = img.width / P;
  // patches[t][tt][c][bh][mh][y][bw][mw][x] → transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
  const out = new Float32Array(gh * gw * C * T * P * P);
  let o = 0;
  for (let bh = 0; bh < gh / M; bh++)
    for (let bw = 0; bw < gw / M; bw++)
      for (let mh = 0; mh < M; mh++)
        for (let mw = 0; mw < M; mw++)
          for (let c = 0; c < C; c++)
            for (let tt = 0; tt < T; tt++)
              for (let y = 0; y < P; y++)
                for (let x = 0; x < P; x++) {
                  const row = (bh * M + mh) * P + y;
                  const col = (bw * M + mw) * P + x;
                  out[o++] = lut[c * 256 + img.data[3 * (row * img.width + col) + c]];
                }
  return out;
}

test('patches: count = grid product, HF order on a hand-built image', () => {
  // 28 rows × 56 columns: grid [1, 2, 4], 8 patches. R encodes the column, G the row.
  const img: RgbImage = { width: 56, height: 28, data: new Uint8Array(56 * 28 * 3) };
  for (let y = 0; y < 28; y++) for (let x = 0; x < 56; x++) img.data.set([x * 4, y * 8, 7], 3 * (y * 56 + x));
  const p = patchify(img);
  assert.deepEqual(p.grid, [1, 2, 4]);
  assert.equal(p.numPatches, 8);
  assert.equal(p.patchDim, 1176);
  assert.equal(p.pixelValues.length, 8 * 1176);
  assert.equal(imageTokenCount(p.grid), 2);
  // Patch k's top-left pixel (row, col), worked by hand: one 2×2 merge block after the other.
  const corners = [
    [0, 0],
    [0, 14],
    [14, 0],
    [14, 14],
    [0, 28],
    [0, 42],
    [14, 28],
    [14, 42],
  ];
  const lut = normalizationTable();
  const decode = (v: number, c: number): number => {
    for (let b = 0; b < 256; b++) if (lut[c * 256 + b] === v) return b;
    throw new Error(`value ${v} is no byte of channel ${c}`);
  };
  corners.forEach(([row0, col0], k) => {
    const base = k * 1176;
    for (const [y, x] of [
      [0, 0],
      [0, 13],
      [13, 0],
      [5, 9],
    ]) {
      for (const tt of [0, 1]) {
        // channel, temporal, row, column
        assert.equal(
          decode(p.pixelValues[base + 0 * 392 + tt * 196 + y * 14 + x], 0),
          (col0 + x) * 4,
          `patch ${k} R at ${y},${x} t${tt}`,
        );
        assert.equal(
          decode(p.pixelValues[base + 1 * 392 + tt * 196 + y * 14 + x], 1),
          (row0 + y) * 8,
          `patch ${k} G at ${y},${x} t${tt}`,
        );
        assert.equal(decode(p.pixelValues[base + 2 * 392 + tt * 196 + y * 14 + x], 2), 7);
      }
    }
  });
  // And on a random image against the literal reshape/transpose.
  const r = randomImage(84, 112, 5);
  const q = patchify(r);
  assert.deepEqual(q.grid, [1, 8, 6]);
  assert.deepEqual(q.pixelValues, patchifyReference(r));
  assert.throws(() => patchify(randomImage(30, 28, 1)), /not a multiple of 28/);
});

test('processImageFile through the cache: same patches, hits counted, entries atomic', async () => {
  const file = path.join(tmp, 'p.png');
  await raw(randomImage(200, 150, 9))
    .png()
    .toFile(file);
  const cache = new ResizedImageCache(path.join(tmp, 'cache'));
  const direct = await processImageFile(file);
  assert.deepEqual([direct.height, direct.width], smartResize(150, 200));
  assert.deepEqual(direct.grid, [1, direct.height / 14, direct.width / 14]);
  const first = await processImageFile(file, { cache });
  const second = await processImageFile(file, { cache });
  assert.equal(cache.misses, 1);
  assert.equal(cache.hits, 1);
  assert.deepEqual(second.pixelValues, direct.pixelValues);
  assert.deepEqual(first.grid, second.grid);
  // Other size rule, other key.
  await processImageFile(file, { cache, maxPixels: 56 * 56 });
  assert.equal(cache.misses, 2);
  const files = fs.readdirSync(path.join(tmp, 'cache'), { recursive: true }).map(String);
  assert.equal(files.filter((f) => f.endsWith('.rgb')).length, 2);
  assert.equal(files.filter((f) => f.includes('.tmp')).length, 0);
  // A damaged entry is a miss, then rewritten.
  const entry = files.find((f) => f.endsWith('.rgb'))!;
  fs.writeFileSync(path.join(tmp, 'cache', entry), 'garbage');
  await processImageFile(file, { cache });
  await processImageFile(file, { cache, maxPixels: 56 * 56 });
  assert.equal(cache.misses, 3);
});
