// `medgr2 data import INPUT... --out FILE`: OmniMedVQA JSON, the MedGR² authors' JSONL, R1-V / Med-R1
// and LLaVA conversations into canonical Samples. Bad records are listed on stderr (file:line: reason)
// and skipped; --strict stops at the first. `--out x.jsonl` writes canonical JSONL, anything else a
// record file of medgr2.Sample.
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { formatBadRecord, importFiles, type ImportSummary } from '../data/import';
import { IMPORT_FORMATS, type ImportFormat } from '../data/importers/types';
import { writeSampleFile } from '../data/sample_files';

interface ImportCliOptions {
  out: string;
  imagesRoot?: string;
  strict?: boolean;
  dedupe?: boolean;
  format?: string;
  json?: boolean;
}

export function formatImportSummary(s: ImportSummary, out: string): string {
  const lines = s.files.map((f) => `  ${f.file} (${f.format}): ${f.imported} imported, ${f.bad} bad of ${f.records}`);
  lines.push(
    `imported ${s.imported} of ${s.records} records: ${s.bad} bad, ${s.duplicates} duplicate(s) (same images + question)` +
      `${s.dropped ? `, ${s.dropped} dropped` : ''}` +
      `${s.modalityInferred ? `, ${s.modalityInferred} modality inferred from its dataset` : ''} -> ${out}`,
  );
  return lines.join('\n');
}

export function registerDataImport(data: Command): void {
  data
    .command('import')
    .description('import medical VQA files (OmniMedVQA, MedGR² authors, R1-V/Med-R1, LLaVA) as canonical samples')
    .argument('<inputs...>', 'JSON array or JSONL files')
    .requiredOption('--out <file>', 'output: a record file of samples, or canonical JSONL when it ends in .jsonl')
    .option('--images-root <dir>', 'resolve relative image paths against this folder')
    .option('--strict', 'fail on the first bad record')
    .option('--dedupe', 'drop later copies of a sample with the same images and question')
    .option(
      '--format <format>',
      `read every input as this format (${IMPORT_FORMATS.join(', ')}) instead of detecting it`,
    )
    .option('--json', 'print the summary as one JSON object')
    .action((inputs: string[], opts: ImportCliOptions) => {
      if (opts.format !== undefined && !(IMPORT_FORMATS as readonly string[]).includes(opts.format)) {
        throw new Error(`--format must be one of ${IMPORT_FORMATS.join(', ')}, got '${opts.format}'`);
      }
      for (const f of inputs) if (!fs.existsSync(f)) throw new Error(`${f}: no such file`);
      const result = importFiles(inputs, {
        format: opts.format as ImportFormat | undefined,
        imagesRoot: opts.imagesRoot,
        strict: opts.strict,
        dedupe: opts.dedupe,
        onProgress: (m) => process.stderr.write(m + '\n'),
      });
      for (const b of result.bad) process.stderr.write(`medgr2: bad record: ${formatBadRecord(b)}\n`);
      if (result.samples.length === 0)
        throw new Error(`no records imported from ${inputs.join(', ')} (${result.bad.length} bad)`);
      writeSampleFile(opts.out, result.samples);
      process.stdout.write(
        (opts.json
          ? JSON.stringify({ ...result.summary, out: opts.out })
          : formatImportSummary(result.summary, opts.out)) + '\n',
      );
    });
}
