// Plain-text and markdown tables, as the CLI's score tables and the cycle's report.md print them.

export type TableStyle = 'text' | 'markdown';

/** A table with a header row; text style pads columns, markdown style uses pipes. */
export function renderTable(header: string[], rows: string[][], style: TableStyle): string {
  if (style === 'markdown') {
    const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
    return [line(header), line(header.map((_, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
