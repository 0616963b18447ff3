// How often the candidates selection kept, and those it dropped, name the right answer: measured against
// the MedSynth world's truth.jsonl for the report alone (selection never reads it). Besides the round's
// totals, per task and per side of the seed (seed modalities / held-out modalities), which is where
// a round's data can be right or not at all: in the default world no held-out-modality anatomy
// candidate has ever been right, in any round (docs/tuning.md).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { normalizeAnswerText } from '../data/answer_grammar';
import type { ScoredCandidate } from '../data/proto';
import { GRADES } from '../data/medsynth/vocab';
import { factOfTask } from './describe';

/** Valid candidates with a truth for their task: kept and dropped, and how many of each are right. */
export interface SelectionCounts {
  kept: number;
  keptCorrect: number;
  dropped: number;
  droppedCorrect: number;
}

export interface SelectionPrecision extends SelectionCounts {
  /** "<task> (seed modalities)" / "<task> (held-out modalities)" -> counts; absent in older round records. */
  byGroup?: Record<string, SelectionCounts>;
}

const zero = (): SelectionCounts => ({ kept: 0, keptCorrect: 0, dropped: 0, droppedCorrect: 0 });

function count(c: SelectionCounts, selected: boolean, right: boolean): void {
  if (selected) {
    c.kept++;
    if (right) c.keptCorrect++;
  } else {
    c.dropped++;
    if (right) c.droppedCorrect++;
  }
}

/** The group a candidate counts in: its task, on which side of the seed its image's true modality lies. */
export function precisionGroup(task: string, modality: string, seedModalities: readonly string[]): string {
  return `${task} (${seedModalities.includes(modality) ? 'seed' : 'held-out'} modalities)`;
}

type Truth = { modality: string; anatomy: string; disease: string; lesion?: { grade: number } | null };

/** The answer the truth gives for a fact of the image ("" when the image has none, e.g. no lesion). */
function truthFact(t: Truth, field: NonNullable<ReturnType<typeof factOfTask>>): string {
  if (field === 'grade') return t.lesion ? GRADES[t.lesion.grade - 1] : '';
  return t[field];
}

/** The truth of a MedSynth image: WORLD/train/truth.jsonl beside the images/ folder that holds it. */
class TruthIndex {
  private byDir = new Map<string, Map<string, Truth> | undefined>();

  of(image: string): Truth | undefined {
    const file = path.resolve(image);
    const dir = path.dirname(path.dirname(file));
    if (!this.byDir.has(dir)) this.byDir.set(dir, readTruth(dir));
    return this.byDir.get(dir)?.get(file);
  }

  /** Whether any image had a truth file beside it. */
  get found(): boolean {
    return [...this.byDir.values()].some((m) => m !== undefined);
  }
}

function readTruth(dir: string): Map<string, Truth> | undefined {
  const file = path.join(dir, 'truth.jsonl');
  if (!fs.existsSync(file)) return undefined;
  const out = new Map<string, Truth>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const t = JSON.parse(line);
    out.set(path.resolve(dir, t.image_path), t);
  }
  return out;
}

/**
 * Reads the truth.jsonl of the world the candidates' images belong to (found from the images, so an
 * ablation chain, whose folder holds no world, is measured too) for the measurement alone; undefined
 * when no image has one (not a MedSynth world).
 */
export function selectionPrecision(
  scored: readonly ScoredCandidate[],
  seedModalities: readonly string[] = [],
): SelectionPrecision | undefined {
  const truth = new TruthIndex();
  const out: SelectionPrecision = { ...zero(), byGroup: {} };
  for (const s of scored) {
    if (!s.candidate.valid) continue;
    const t = truth.of(s.candidate.sample.images[0] ?? '');
    const field = factOfTask(s.candidate.sample.task);
    const want = t && field && truthFact(t, field);
    if (!want) continue;
    const right = normalizeAnswerText(s.candidate.sample.answer) === normalizeAnswerText(want);
    count(out, s.selected, right);
    const group = precisionGroup(s.candidate.sample.task, t.modality, seedModalities);
    count((out.byGroup![group] ??= zero()), s.selected, right);
  }
  return truth.found ? out : undefined;
}
