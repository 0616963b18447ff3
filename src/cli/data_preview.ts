// `medgr2 data preview IMAGE --out OUT.png [--model DIR]`: the image as the model sees it (decoded,
// resized by the Qwen2-VL rule, before normalization), plus one JSON line with its size, patch grid,
// patch count and the number of <|image_pad|> tokens it takes. With --model, the folder's
// preprocessor_config.json gives the resize bounds and the patch and merge sizes (transformers'
// defaults without it); --min-pixels / --max-pixels override the bounds.
import * as fs from 'node:fs';
import type { Command } from 'commander';
import sharp from 'sharp';
import { decodeImageFile } from '../data/images/decode';
import { imageTokenCount, type Grid } from '../data/images/patchify';
import { sizeRuleOf } from '../data/images/processor';
import { resizeForModel } from '../data/images/resize';
import { defaultProcessorSettings, readProcessorSettings, withPixelBounds } from '../model/folder_settings';
import { pixelBoundOptions } from './model_arg';
import { writeFileAtomic } from '../util/atomic_write';

interface PreviewOptions {
  out: string;
  model?: string;
  minPixels?: number;
  maxPixels?: number;
}

export function registerDataPreview(data: Command): void {
  const pixelBounds = pixelBoundOptions("the --model folder's, else Qwen2-VL's");
  data
    .command('preview')
    .description(
      'write IMAGE as the model sees it (decoded and resized, before normalization) and print its patch grid',
    )
    .argument('<image>', 'PNG, JPEG, BMP, TIFF, WebP or DICOM file')
    .requiredOption('--out <file>', 'output PNG')
    .option('--model <dir>', "a model folder: its preprocessor_config.json's bounds, patch and merge sizes")
    .addOption(pixelBounds[0])
    .addOption(pixelBounds[1])
    .action(async (image: string, opts: PreviewOptions) => {
      if (opts.model !== undefined && !(fs.existsSync(opts.model) && fs.statSync(opts.model).isDirectory()))
        throw new Error(`--model ${opts.model}: not a model folder`);
      const processor = withPixelBounds(
        opts.model !== undefined ? readProcessorSettings(opts.model) : defaultProcessorSettings(),
        opts,
      );
      const decoded = await decodeImageFile(image);
      const img = await resizeForModel(decoded, sizeRuleOf(processor));
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
      const { patchSize, mergeSize } = processor.patch;
      // One image is one frame (repeated to temporal_patch_size frames): t = 1, as the processor's grid.
      const grid: Grid = [1, img.height / patchSize, img.width / patchSize];
      process.stdout.write(
        JSON.stringify({
          width: img.width,
          height: img.height,
          grid,
          numPatches: grid[0] * grid[1] * grid[2],
          imageTokens: imageTokenCount(grid, mergeSize),
        }) + '\n',
      );
    });
}
