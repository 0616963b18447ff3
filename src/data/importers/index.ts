// The importers, and the choice of one for a file from its first records.
import { llavaImporter } from './llava';
import { medgr2AuthorsImporter } from './medgr2_authors';
import { medgr2JsonlImporter } from './medgr2_jsonl';
import { omnimedvqaImporter } from './omnimedvqa';
import { r1vImporter } from './r1v';
import type { ImportFormat, Importer, SourceObject } from './types';

// Most specific first: medgr2's JSONL also has `options` and `answer`; OmniMedVQA also has `gt_answer`.
export const IMPORTERS: readonly Importer[] = [
  medgr2JsonlImporter,
  llavaImporter,
  r1vImporter,
  omnimedvqaImporter,
  medgr2AuthorsImporter,
];

export function importerFor(format: ImportFormat): Importer {
  const imp = IMPORTERS.find((i) => i.format === format);
  if (!imp) throw new Error(`unknown format '${format}'`);
  return imp;
}

/** The format of the first record that any importer recognizes (looking at up to `limit` records). */
export function detectFormat(values: readonly unknown[], limit = 50): Importer | undefined {
  for (const v of values.slice(0, limit)) {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) continue;
    const imp = IMPORTERS.find((i) => i.matches(v as SourceObject));
    if (imp) return imp;
  }
  return undefined;
}
