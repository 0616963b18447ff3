// Finding the answer options inside question text (matching an answer to an option is
// ../answer_grammar.ts).
import { LETTERS } from '../answer_grammar';

/** The MedGR² authors' suffix:
 *  "... Please choose one of the following: X or Y or Z or W. You must pick only one answer." */
const CHOOSE_SUFFIX = /\s*Please choose one of the following:\s*([\s\S]*?)\.?\s*You must pick only one answer\.?\s*$/;

export interface ParsedOptions {
  stem: string;
  options: string[];
}

/** Options written as "Please choose one of the following: X or Y or Z or W." (split on " or ").
 *  When `answer` is given and an option holds " or " itself, a split that keeps the answer whole wins. */
export function parseChooseSuffix(question: string): ParsedOptions | undefined {
  const m = CHOOSE_SUFFIX.exec(question);
  if (!m) return undefined;
  const options = m[1].split(' or ').map((o) => o.trim());
  if (options.length < 2 || options.some((o) => o.length === 0)) return undefined;
  return { stem: question.slice(0, m.index).trim(), options };
}

/** The question without the authors' "Please choose ..." suffix (unchanged when there is none). */
export function stripChooseSuffix(question: string): string {
  const m = CHOOSE_SUFFIX.exec(question);
  return m ? question.slice(0, m.index).trim() : question;
}

// Marker styles for lettered options, tried in order: "A)", "(A)", "A.", "A:".
const MARKER_STYLES: Array<(letter: string) => RegExp> = [
  (l) => new RegExp(`(^|[\\s,;:])${l}\\)\\s*`, 'g'),
  (l) => new RegExp(`(^|[\\s,;:])\\(${l}\\)\\s*`, 'g'),
  (l) => new RegExp(`(^|[\\s,;:])${l}\\.\\s+`, 'g'),
  (l) => new RegExp(`(^|[\\s,;:])${l}:\\s*`, 'g'),
];

interface Marker {
  start: number; // where the marker begins (after its leading separator)
  end: number; // where the option text begins
}

function findMarkers(text: string, style: (letter: string) => RegExp): Marker[] {
  const markers: Marker[] = [];
  let from = 0;
  for (const letter of LETTERS) {
    const re = style(letter);
    re.lastIndex = from;
    const m = re.exec(text);
    if (!m) break;
    const start = m.index + m[1].length;
    markers.push({ start, end: m.index + m[0].length });
    from = m.index + m[0].length;
  }
  return markers;
}

/** Options written with letters: "A)CT, B)MRI, C)X-Ray" (Med-R1), "(A) CT (B) MRI", or one per line
 *  "A. CT\nB. MRI". Letters must run A, B, C, ... in order; at least two are needed. */
export function parseLetteredOptions(text: string): ParsedOptions | undefined {
  for (const style of MARKER_STYLES) {
    const markers = findMarkers(text, style);
    if (markers.length < 2) continue;
    // Options on their own lines end at the end of their line (text after them is an instruction).
    const perLine = markers.every((m) => m.start === 0 || text[m.start - 1] === '\n');
    const options: string[] = [];
    for (let i = 0; i < markers.length; i++) {
      let end = i + 1 < markers.length ? markers[i + 1].start : text.length;
      if (perLine) {
        const nl = text.indexOf('\n', markers[i].end);
        if (nl >= 0 && nl < end) end = nl;
      }
      options.push(text.slice(markers[i].end, end).trim().replace(/[,;]$/, '').trim());
    }
    if (options.some((o) => o.length === 0)) continue;
    return { stem: text.slice(0, markers[0].start).trim(), options };
  }
  return undefined;
}
