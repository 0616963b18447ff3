// DICOM decoding: every encoding variant written by the test's own writer, decoded to the pixels
// worked out by hand from the standard's formulas.
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { decodeImage, decodeImageFile } from '../../src/data/images/decode';
import { decodeDicom, windowLinear } from '../../src/data/images/dicom';
import { greyImage, SYNTAX, writeDicom } from '../helpers/dicom';
import { tempDir } from '../helpers/temp_dir';

/** The grey level of each pixel (checking R = G = B). */
function greys(img: { data: Uint8Array; width: number; height: number }): number[] {
  const out: number[] = [];
  for (let i = 0; i < img.width * img.height; i++) {
    assert.equal(img.data[3 * i], img.data[3 * i + 1]);
    assert.equal(img.data[3 * i], img.data[3 * i + 2]);
    out.push(img.data[3 * i]);
  }
  return out;
}

test('explicit VR little endian, 16-bit unsigned, no window: min-max to 0..255', () => {
  const bytes = writeDicom({
    syntax: SYNTAX.explicitLE,
    elements: greyImage({ rows: 2, cols: 2, bits: 16, pixels: [0, 100, 200, 400] }),
  });
  const img = decodeDicom(bytes, 'a.dcm');
  assert.equal(img.width, 2);
  assert.equal(img.height, 2);
  // 255·v/400: 0, 63.75, 127.5, 255 → rounded.
  assert.deepEqual(greys(img), [0, 64, 128, 255]);
});

test('implicit VR little endian, 8-bit, with a window', () => {
  // c = 100, w = 101: below 100 − 0.5 − 50 = 49.5 → 0; above 149.5 → 255; else ((x − 99.5)/100 + 0.5)·255.
  const bytes = writeDicom({
    syntax: SYNTAX.implicitLE,
    elements: greyImage({ rows: 1, cols: 4, bits: 8, pixels: [10, 100, 120, 200], center: '100', width: '101' }),
  });
  // 100 → (0.005 + 0.5)·255 = 128.775 → 129; 120 → (0.205 + 0.5)·255 = 179.775 → 180.
  assert.deepEqual(greys(decodeDicom(bytes, 'b.dcm')), [0, 129, 180, 255]);
});

test('explicit VR big endian, 16-bit signed, rescale slope/intercept and window', () => {
  // Stored −100, 0, 100, 700 → ×2 − 1024 → −1224, −1024, −824, 376 (HU).
  // Window c = −900, w = 400: edges −1100 and −701.
  // −1024 → ((−1024 + 900.5)/399 + 0.5)·255 = 48.57 → 49; −824 → ((76.5)/399 + 0.5)·255 = 176.39 → 176.
  const words = [-100, 0, 100, 700].map((v) => v & 0xffff);
  const bytes = writeDicom({
    syntax: SYNTAX.explicitBE,
    elements: greyImage({
      rows: 2,
      cols: 2,
      bits: 16,
      signed: true,
      pixels: words,
      slope: '2',
      intercept: '-1024',
      center: '-900',
      width: '400',
    }),
  });
  assert.deepEqual(greys(decodeDicom(bytes, 'c.dcm')), [0, 49, 176, 255]);
});

test('the window formula matches PS3.3 C.11.2.1.2.1 at its edges', () => {
  assert.equal(windowLinear(-160, 40, 400), 0);
  assert.equal(windowLinear(239, 40, 400), 255);
  assert.equal(windowLinear(240, 40, 400), 255);
  assert.equal(windowLinear(39.5, 40, 400), 128); // (0/399 + 0.5)·255 = 127.5 → 128
});

test('MONOCHROME1 is inverted; bits above BitsStored are ignored', () => {
  // 12 bits stored: the 0xF000 overlay bits must not change the value.
  const pixels = [0, 0xf000 | 1000, 2000, 4000];
  const bytes = writeDicom({
    syntax: SYNTAX.explicitLE,
    elements: greyImage({ rows: 1, cols: 4, bits: 16, bitsStored: 12, pixels, photometric: 'MONOCHROME1' }),
  });
  // min-max over 0..4000: 0, 63.75→64, 127.5→128, 255; inverted: 255, 191, 127, 0.
  assert.deepEqual(greys(decodeDicom(bytes, 'd.dcm')), [255, 191, 127, 0]);
});

test('a bare dataset without preamble is read as implicit VR little endian (by .dcm extension)', async () => {
  const bytes = writeDicom({
    syntax: SYNTAX.implicitLE,
    part10: false,
    elements: greyImage({ rows: 1, cols: 2, bits: 8, pixels: [5, 15] }),
  });
  assert.deepEqual(greys(await decodeImage(bytes, 'bare.dcm')), [0, 255]);
});

test('a truncated file errors with its name', async () => {
  const dir = tempDir('dicom');
  const full = writeDicom({
    syntax: SYNTAX.explicitLE,
    elements: greyImage({ rows: 16, cols: 16, bits: 16, pixels: new Array(256).fill(7) }),
  });
  for (const cut of [full.length - 100, 140]) {
    const file = path.join(dir, `cut${cut}.dcm`);
    fs.writeFileSync(file, full.subarray(0, cut));
    await assert.rejects(
      decodeImageFile(file),
      (e: Error) => e.message.includes(file) && /truncated/.test(e.message) && !e.message.includes('\n'),
    );
  }
});

test('a compressed transfer syntax and missing pixel data are refused by name', () => {
  const jpeg = writeDicom({
    syntax: SYNTAX.jpegBaseline,
    elements: greyImage({ rows: 1, cols: 2, bits: 8, pixels: [1, 2] }),
  });
  assert.throws(
    () => decodeDicom(jpeg, 'j.dcm'),
    /j\.dcm: unsupported DICOM transfer syntax 1\.2\.840\.10008\.1\.2\.4\.50 \(JPEG Baseline\)/,
  );
  const noPixels = writeDicom({
    syntax: SYNTAX.explicitLE,
    elements: greyImage({ rows: 1, cols: 2, bits: 8, pixels: [1, 2] }).filter((e) => e.tag[0] !== 0x7fe0),
  });
  assert.throws(() => decodeDicom(noPixels, 'n.dcm'), /n\.dcm: DICOM file has no pixel data/);
});
