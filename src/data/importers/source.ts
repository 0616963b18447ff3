// Reads an input file as a list of JSON values with the 1-based line each starts on, from either a
// JSON array (OmniMedVQA, Med-R1, LLaVA) or JSON Lines (the MedGR² authors'). A value that does not
// parse is returned as an error with its line, so one broken record never hides the others.
import * as fs from 'node:fs';

export interface SourceValue {
  line: number;
  value: unknown;
}

export interface SourceError {
  line: number;
  reason: string;
}

export interface SourceRecords {
  kind: 'json-array' | 'jsonl';
  values: SourceValue[];
  errors: SourceError[];
}

export function readSourceRecords(file: string): SourceRecords {
  let text = fs.readFileSync(file, 'utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a BOM from Windows editors
  const first = text.search(/\S/);
  if (first < 0) throw new Error(`${file}: empty file (no records)`);
  return text[first] === '[' ? splitJsonArray(text, first) : splitJsonLines(text);
}

function parseOne(slice: string, line: number, values: SourceValue[], errors: SourceError[]): void {
  try {
    values.push({ line, value: JSON.parse(slice) });
  } catch (err) {
    errors.push({ line, reason: `not valid JSON (${(err as Error).message})` });
  }
}

function splitJsonLines(text: string): SourceRecords {
  const values: SourceValue[] = [];
  const errors: SourceError[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i].trim();
    if (l.length > 0) parseOne(l, i + 1, values, errors);
  }
  return { kind: 'jsonl', values, errors };
}

/** Finds the top-level elements of a JSON array by scanning brackets outside strings, then parses
 *  each element on its own (so an error names the element's line, not just "position 81234"). */
function splitJsonArray(text: string, open: number): SourceRecords {
  const values: SourceValue[] = [];
  const errors: SourceError[] = [];
  let line = 1 + countNewlines(text, 0, open);
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  let startLine = 0;
  let closed = false;
  const finish = (end: number): void => {
    if (start >= 0) parseOne(text.slice(start, end), startLine, values, errors);
    start = -1;
  };
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 0) {
      if (c === ',') {
        finish(i);
        continue;
      }
      if (c === ']') {
        finish(i);
        closed = true;
        break;
      }
      if (start < 0 && !/\s/.test(c)) {
        start = i;
        startLine = line;
      }
    }
    if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  if (!closed) {
    finish(text.length);
    errors.push({ line, reason: 'the JSON array is not closed (file cut short?)' });
  }
  return { kind: 'json-array', values, errors };
}

function countNewlines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}
