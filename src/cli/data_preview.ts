// `medgr2 data preview IMAGE --out OUT.png`: the image as the model sees it (decoded, resized by
// the Qwen2-VL rule, before normalization), plus one JSON line with its size and patch grid.
import type { Command } from 'commander';
import sharp from 'sharp';
import { decodeImageFile } from '../data/images/decode';
import { resizeForModel } from '../data/images/resize';
import { QWEN2VL_SIZE_RULE } from '../data/images/smart_resize';
import { parseIntOption } from './options';
import { writeFileAtomic } from '../util/atomic_write';

export function registerDataPreview(data: Command): void {
  data
    .command('preview')
    .description(
      'write IMAGE as the model sees it (decoded and resized, before normalization) and print its patch grid',
    )
    .argument('<image>', 'PNG, JPEG, BMP, TIFF, WebP or DICOM file')
    .requiredOption('--out <file>', 'output PNG')
    .option(
      '--min-pixels <n>',
      'smallest image area after resize',
      parseIntOption('--min-pixels'),
      QWEN2VL_SIZE_RULE.minPixels,
    )
    .option(
      '--max-pixels <n>',
      'largest image area after resize',
      parseIntOption('--max-pixels'),
      QWEN2VL_SIZE_RULE.maxPixels,
    )
    .action(async (image: string, opts: { out: string; minPixels: number; maxPixels: number }) => {
      const decoded = await decodeImageFile(image);
      const img = await resizeForModel(decoded, { minPixels: opts.minPixels, maxPixels: opts.maxPixels });
      try {
        await writeFileAtomic(
          opts.out,
          await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
            .png()
            .toBuffer(),
        );
      } catch (e) {
        throw new Error(`${opts.out}: cannot write PNG (${(e as Error).message})`);
      }
      const grid = [1, img.height / 14, img.width / 14];
      process.stdout.write(JSON.stringify({ width: img.width, height: img.height, grid }) + '\n');
    });
}
