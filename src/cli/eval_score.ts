// `medgr2 eval score --predictions P --benchmark B [--json | --markdown]`: accuracy overall and by
// modality, task and dataset, invalid answers and macro-F1 (rule and definitions: src/eval/scorer.ts).
import type { Command } from 'commander';
import { readPredictions, scorePredictions, formatScoreTable } from '../eval/scorer';
import { IMPORT_FORMATS, type ImportFormat } from '../data/importers/types';
import { loadSampleFile } from '../data/sample_files';

interface ScoreCliOptions {
  predictions: string;
  benchmark: string;
  json?: boolean;
  markdown?: boolean;
  allowUnknown?: boolean;
  allowMissing?: boolean;
  format?: string;
}

export function registerEvalScore(evalCmd: Command): void {
  evalCmd
    .command('score')
    .description("score a predictions JSONL against a benchmark with the MedGR² authors' rule")
    .requiredOption('--predictions <file>', 'JSONL with question_id and model_answer (or raw) per line')
    .requiredOption('--benchmark <file>', 'the benchmark: a record file of samples or any importable file')
    .option('--json', 'print one JSON object')
    .option('--markdown', 'print markdown tables')
    .option('--allow-unknown', 'leave out predictions whose ids are not in the benchmark instead of failing')
    .option('--allow-missing', 'leave out benchmark samples that have no prediction instead of failing')
    .option('--format <format>', `benchmark format when it is not a record file (${IMPORT_FORMATS.join(', ')})`)
    .action((opts: ScoreCliOptions) => {
      if (opts.json && opts.markdown) throw new Error('--json and --markdown exclude each other');
      const warn = (m: string) => process.stderr.write(`medgr2: warning: ${m}\n`);
      const benchmark = loadSampleFile(opts.benchmark, { format: opts.format as ImportFormat | undefined, onWarning: warn });
      const predictions = readPredictions(opts.predictions);
      const result = scorePredictions(benchmark, predictions, {
        allowUnknown: opts.allowUnknown,
        allowMissing: opts.allowMissing,
        predictionsFile: opts.predictions,
        benchmarkFile: opts.benchmark,
        onWarning: warn,
      });
      const text = opts.json ? JSON.stringify(result) : formatScoreTable(result, opts.markdown ? 'markdown' : 'text');
      process.stdout.write(text + '\n');
    });
}
