// `medgr2 eval score --predictions P --benchmark B [--json | --markdown]`: accuracy overall and by
// modality, task and dataset, invalid answers and macro-F1 (rule and definitions: src/eval/scorer.ts).
// Several models: `--predictions NAME=P` once per model gives the cross-modality (or, with --by,
// cross-task / cross-dataset) matrix, one row per model; `--heatmap OUT.png` draws it (and OUT.svg).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import {
  crossMatrix,
  formatCrossMatrix,
  readPredictions,
  scorePredictions,
  formatScoreTable,
  type MatrixAxis,
  type ScoreResult,
} from '../eval/scorer';
import { crossMatrixChart } from '../eval/heatmap';
import { writeChart } from '../report/charts';
import { IMPORT_FORMATS, type ImportFormat } from '../data/importers/types';
import { loadSampleFile } from '../data/sample_files';

interface ScoreCliOptions {
  predictions: string[];
  benchmark: string;
  json?: boolean;
  markdown?: boolean;
  allowUnknown?: boolean;
  allowMissing?: boolean;
  format?: string;
  by: string;
  heatmap?: string;
}

const AXES: readonly MatrixAxis[] = ['modality', 'task', 'dataset'];

/** `NAME=FILE` names a model; a plain FILE (or one that exists as written, '=' and all) is named
 *  by its file name without the extension. */
export function namedPredictions(arg: string): { name: string; file: string } {
  const eq = arg.indexOf('=');
  if (eq > 0 && !fs.existsSync(arg)) return { name: arg.slice(0, eq), file: arg.slice(eq + 1) };
  return { name: path.basename(arg).replace(/\.[^.]*$/, ''), file: arg };
}

export function registerEvalScore(evalCmd: Command): void {
  evalCmd
    .command('score')
    .description(
      "score a predictions JSONL against a benchmark with the MedGR² authors' rule; several give a cross-modality matrix",
    )
    .option(
      '--predictions <[name=]file>',
      'JSONL with question_id and model_answer (or raw) per line; repeat for several models',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .requiredOption('--benchmark <file>', 'the benchmark: a record file of samples or any importable file')
    .option('--json', 'print one JSON object')
    .option('--markdown', 'print markdown tables')
    .option('--allow-unknown', 'leave out predictions whose ids are not in the benchmark instead of failing')
    .option('--allow-missing', 'leave out benchmark samples that have no prediction instead of failing')
    .option('--format <format>', `benchmark format when it is not a record file (${IMPORT_FORMATS.join(', ')})`)
    .option('--by <axis>', `columns of the matrix and heat-map (${AXES.join(', ')})`, 'modality')
    .option('--heatmap <out.png>', 'draw the matrix (models x groups, accuracy %) as a PNG, with the SVG beside it')
    .action(async (opts: ScoreCliOptions) => {
      if (opts.predictions.length === 0) throw new Error("required option '--predictions <[name=]file>' not specified");
      if (opts.json && opts.markdown) throw new Error('--json and --markdown exclude each other');
      if (!(AXES as readonly string[]).includes(opts.by))
        throw new Error(`--by must be one of ${AXES.join(', ')}, got '${opts.by}'`);
      if (opts.heatmap !== undefined && !opts.heatmap.endsWith('.png'))
        throw new Error(`--heatmap ${opts.heatmap}: the file name must end in .png`);
      const warn = (m: string) => process.stderr.write(`medgr2: warning: ${m}\n`);
      const benchmark = loadSampleFile(opts.benchmark, {
        format: opts.format as ImportFormat | undefined,
        onWarning: warn,
      });
      const models = opts.predictions.map(namedPredictions);
      const seen = new Set<string>();
      for (const m of models) {
        if (seen.has(m.name))
          throw new Error(`--predictions: two models are named '${m.name}'; name them with NAME=FILE`);
        seen.add(m.name);
      }
      const results: { trainedOn: string; score: ScoreResult }[] = models.map((m) => ({
        trainedOn: m.name,
        score: scorePredictions(benchmark, readPredictions(m.file), {
          allowUnknown: opts.allowUnknown,
          allowMissing: opts.allowMissing,
          predictionsFile: m.file,
          benchmarkFile: opts.benchmark,
          onWarning: warn,
        }),
      }));
      const matrix = crossMatrix(results, opts.by as MatrixAxis);
      if (opts.heatmap) await writeChart(opts.heatmap, crossMatrixChart(matrix));
      let text: string;
      if (results.length === 1) {
        // one model: the full score, as before (the heat-map, if asked, is its one row)
        text = opts.json
          ? JSON.stringify(results[0].score)
          : formatScoreTable(results[0].score, opts.markdown ? 'markdown' : 'text');
      } else {
        text = opts.json
          ? JSON.stringify({ matrix, scores: Object.fromEntries(results.map((r) => [r.trainedOn, r.score])) })
          : formatCrossMatrix(matrix, opts.markdown ? 'markdown' : 'text');
      }
      process.stdout.write(text + '\n');
    });
}
