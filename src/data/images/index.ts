// Images for the model: decoders (sharp, BMP, DICOM), the Qwen2-VL size rule, patches, cache.
export type { RgbImage } from './types';
export { decodeImage, decodeImageFile, detectFormat } from './decode';
export { decodeDicom, windowLinear } from './dicom';
export { decodeBmp } from './bmp';
export { smartResize, roundHalfEven, QWEN2VL_SIZE_RULE, type SizeRule } from './smart_resize';
export { resizeRgb, resizeForModel } from './resize';
export { resizeBicubicPil } from './resample_pil';
export { patchify, imageTokenCount, normalizationTable, CLIP_MEAN, CLIP_STD, QWEN2VL_PATCH_RULE } from './patchify';
export type { Grid, PatchRule, Patches } from './patchify';
export { ResizedImageCache, cacheKey } from './cache';
export { processImage, processImageFile, modelImage, sizeRuleOf } from './processor';
export type { ProcessedImage, ProcessorOptions } from './processor';
