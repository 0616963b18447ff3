// The bench results' CSV text: one field, one parse, and appending rows whose columns may differ
// from the file's. A bench that gains a column (grpo_loss and grpo_step gained `variant`) used to
// append its rows under the old header, shifting every later field; now the file is rewritten
// under the union of the columns, older rows leaving the new ones empty.

export type CsvRow = Record<string, string | number>;

export function csvField(v: string | number): string {
  const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(6)) : v;
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Records of CSV text (quoted fields may hold commas, quotes as "" and newlines). */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      record.push(field);
      field = '';
    } else if (c === '\n') {
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += c;
  }
  if (field !== '' || record.length > 0) records.push([...record, field]);
  return records;
}

function lines(header: string[], rows: CsvRow[]): string {
  return rows.map((r) => header.map((h) => csvField(r[h] ?? '')).join(',') + '\n').join('');
}

/**
 * What to write so that the file `existing` (its text, '' when absent) also holds `rows`: the text
 * to append when the columns match, or the whole file under the union of the columns (the new
 * rows' order, then columns only the old rows have) when they do not.
 */
export function csvWithRows(existing: string, rows: CsvRow[]): { text: string; rewrite: boolean } {
  const header = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  if (existing.trim() === '') return { text: header.join(',') + '\n' + lines(header, rows), rewrite: true };
  const [oldHeader, ...oldRecords] = parseCsv(existing);
  if (oldHeader.length === header.length && oldHeader.every((h, i) => h === header[i]))
    return { text: (existing.endsWith('\n') ? '' : '\n') + lines(header, rows), rewrite: false };
  const union = [...header, ...oldHeader.filter((h) => !header.includes(h))];
  const oldRows = oldRecords.map((f) => Object.fromEntries(oldHeader.map((h, i) => [h, f[i] ?? ''])));
  return { text: union.join(',') + '\n' + lines(union, [...oldRows, ...rows]), rewrite: true };
}
