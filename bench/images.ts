// Image preprocessing and packing throughput: what the trainers wait on between GPU steps.
// - decode + resize + normalize + patchify, from bytes in memory (no disk), at 448×448 PNG
//   (no resize needed) and 512×512 16-bit DICOM (windowed, resized to 504×504), one image at a
//   time and 4 in flight (sharp decodes on libuv's pool while JS patchifies);
// - packing: planning + assembling padding-free batches (items = samples; each carries a 256-patch
//   image, so this is mostly copying patches: MB/s out counts ids, masks and patches);
// - the same through the on-disk cache of resized images (every epoch after the first);
// - MedSynth rendering + PNG encoding, in images/s (the cycle's world is made at startup).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import sharp from 'sharp';
import { ResizedImageCache } from '../src/data/images/cache';
import { processImage } from '../src/data/images/processor';
import { packSamples, type PackSample } from '../src/data/packing';
import { synthesize } from '../src/data/medsynth/world';
import { greyImage, SYNTAX, writeDicom } from '../test/helpers/dicom';
import { appendCsv, printTable, timeIt, type Row } from './harness';

async function pngs(n: number, side: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let k = 0; k < n; k++) {
    // Smooth anatomy-like content plus noise, so the PNG is realistically hard to compress.
    const data = new Uint8Array(side * side * 3);
    let s = 12345 + k;
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++)
        for (let c = 0; c < 3; c++) {
          s = (Math.imul(s, 1103515245) + 12345) >>> 0;
          data[3 * (y * side + x) + c] = Math.max(
            0,
            Math.min(255, Math.round(128 + 90 * Math.sin(x / 17 + k) * Math.cos(y / 23 + c) + ((s >>> 24) % 24) - 12)),
          );
        }
    out.push(
      await sharp(data, { raw: { width: side, height: side, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  return out;
}

function dicoms(n: number): Uint8Array[] {
  return Array.from({ length: n }, (_, k) => {
    const pixels = Array.from(
      { length: 512 * 512 },
      (_, i) => ((i % 512) * 7 + Math.floor(i / 512) * 3 + k * 11) % 4096,
    );
    return writeDicom({
      syntax: SYNTAX.explicitLE,
      elements: greyImage({
        rows: 512,
        cols: 512,
        bits: 16,
        bitsStored: 12,
        pixels,
        slope: '1',
        intercept: '-1024',
        center: '40',
        width: '400',
      }),
    });
  });
}

async function throughput(
  inputs: Uint8Array[],
  name: string,
  inFlight: number,
  rounds: number,
  cache?: ResizedImageCache,
): Promise<number> {
  let next = 0;
  const total = inputs.length * rounds;
  const worker = async (): Promise<void> => {
    while (next < total) {
      const i = next++;
      await processImage(inputs[i % inputs.length], name, { cache });
    }
  };
  const t = await timeIt(
    () => {
      next = 0;
      return Promise.all(Array.from({ length: inFlight }, worker));
    },
    { warmup: 1, repeats: 3 },
  );
  return total / (t.medianMs / 1000);
}

export async function run(): Promise<Row[]> {
  const rows: Row[] = [];
  const png448 = await pngs(32, 448);
  const dcm512 = dicoms(8);
  for (const [label, inputs, name] of [
    ['png 448x448', png448, 'x.png'],
    ['dicom 512x512 u16', dcm512, 'x.dcm'],
  ] as const) {
    for (const inFlight of [1, 4]) {
      const ips = await throughput(inputs as Uint8Array[], name, inFlight, label.startsWith('png') ? 4 : 8);
      rows.push({
        op: 'images.process',
        shape: label,
        inFlight,
        'items/s': ips,
        'ms/item': 1000 / ips,
        'MB/s out': (ips * (label.startsWith('png') ? 1024 : 1296) * 1176 * 4) / 1e6,
      });
    }
  }

  // Later epochs: the resized image comes from the on-disk cache (hash + read + patchify).
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgr2-bench-cache-'));
  const cache = new ResizedImageCache(cacheDir);
  for (const [label, inputs, name] of [
    ['png 448x448 cached', png448, 'x.png'],
    ['dicom 512x512 u16 cached', dcm512, 'x.dcm'],
  ] as const) {
    const ips = await throughput(inputs as Uint8Array[], name, 4, label.startsWith('png') ? 4 : 8, cache);
    rows.push({
      op: 'images.process',
      shape: label,
      inFlight: 4,
      'items/s': ips,
      'ms/item': 1000 / ips,
      'MB/s out': (ips * (label.startsWith('png') ? 1024 : 1296) * 1176 * 4) / 1e6,
    });
  }
  fs.rmSync(cacheDir, { recursive: true, force: true });

  // Packing: 4000 samples of 100-600 tokens, each with one 16×16-patch image (64 LM tokens).
  const patches = new Float32Array(256 * 1176).fill(0.5);
  const samples: PackSample[] = Array.from({ length: 4000 }, (_, i) => {
    const len = 100 + ((i * 7919) % 500);
    return {
      ids: new Int32Array(len).fill(i),
      targetMask: new Uint8Array(len).fill(1),
      images: [{ grid: [1, 16, 16], pixelValues: patches }],
    };
  });
  const tokens = samples.reduce((s, x) => s + x.ids.length, 0);
  const pack = await timeIt(() => packSamples(samples, { tokenBudget: 8192, seed: 1 }), { warmup: 1, repeats: 5 });
  const packedBytes = tokens * 5 + 4000 * patches.byteLength;
  rows.push({
    op: 'packing',
    shape: `4000 samples (${(tokens / 1e6).toFixed(2)}M tokens), budget 8192`,
    inFlight: 1,
    'items/s': 4000 / (pack.medianMs / 1000),
    'ms/item': pack.medianMs / 4000,
    'MB/s out': packedBytes / 1e6 / (pack.medianMs / 1000),
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'medgr2-bench-synth-'));
  const synth = await timeIt(() => synthesize({ out: dir, count: 200, seed: 1 }), { warmup: 1, repeats: 3 });
  rows.push({
    op: 'medsynth.synth',
    shape: '200 images 112x112 + PNG',
    inFlight: 4,
    'items/s': 200 / (synth.medianMs / 1000),
    'ms/item': synth.medianMs / 200,
  });
  fs.rmSync(dir, { recursive: true, force: true });

  printTable('images: preprocessing and packing throughput (median of repeats)', rows);
  appendCsv('images', rows);
  return rows;
}

if (require.main === module)
  run().catch((e) => {
    console.error(e);
    process.exit(1);
  });
