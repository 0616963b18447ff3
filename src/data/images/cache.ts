// On-disk cache of model-sized images: decode + resize is the expensive part of preprocessing
// (DICOM windowing, JPEG decode, bicubic resampling), while normalize + patchify is a cheap pure
// function of the resized bytes. So the cache holds the resized 8-bit RGB (8× smaller than the
// float32 patches) keyed by the file's content hash and the size rule; patches are recomputed on read.
//
// One file per entry, <dir>/<key[0:2]>/<key>.rgb: "MG2RGB1\n", u32 LE width, u32 LE height, pixels.
// Writes are atomic (temp file, fsync, rename), so a crash never leaves a half entry under the
// final name, and concurrent writers of one key just race to an identical file. An entry that
// fails its size check is treated as a miss and rewritten.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { SizeRule } from './smart_resize';
import type { RgbImage } from './types';
import { writeFileAtomic } from '../../util/atomic_write';

const MAGIC = Buffer.from('MG2RGB1\n', 'ascii');
const HEADER = MAGIC.length + 8;
/** Bump when the resize output changes (kernel, decoder behaviour), so old entries stop matching. */
const FORMAT_VERSION = 1;

export function cacheKey(content: Uint8Array, rule: SizeRule): string {
  return createHash('sha256')
    .update(content)
    .update(
      JSON.stringify({ v: FORMAT_VERSION, factor: rule.factor, minPixels: rule.minPixels, maxPixels: rule.maxPixels }),
    )
    .digest('hex');
}

export class ResizedImageCache {
  hits = 0;
  misses = 0;

  constructor(readonly dir: string) {}

  private file(key: string): string {
    return path.join(this.dir, key.slice(0, 2), `${key}.rgb`);
  }

  async get(key: string): Promise<RgbImage | undefined> {
    let buf: Buffer;
    try {
      buf = await fs.promises.readFile(this.file(key));
    } catch {
      this.misses++;
      return undefined;
    }
    const ok = buf.length >= HEADER && buf.subarray(0, MAGIC.length).equals(MAGIC);
    const width = ok ? buf.readUInt32LE(MAGIC.length) : 0;
    const height = ok ? buf.readUInt32LE(MAGIC.length + 4) : 0;
    if (!ok || width === 0 || height === 0 || buf.length !== HEADER + width * height * 3) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return { width, height, data: new Uint8Array(buf.buffer, buf.byteOffset + HEADER, width * height * 3) };
  }

  async put(key: string, img: RgbImage): Promise<void> {
    const final = this.file(key);
    await fs.promises.mkdir(path.dirname(final), { recursive: true });
    const header = Buffer.alloc(HEADER);
    MAGIC.copy(header);
    header.writeUInt32LE(img.width, MAGIC.length);
    header.writeUInt32LE(img.height, MAGIC.length + 4);
    await writeFileAtomic(final, Buffer.concat([header, img.data]));
  }
}
