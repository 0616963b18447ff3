// Progress for long cycle work: one rewritten line on a terminal, a plain line every few seconds
// otherwise (logs stay readable).
export function progressPrinter(
  stream: NodeJS.WriteStream = process.stderr,
): (what: string, done: number, total: number) => void {
  let last = 0;
  let lastWhat = '';
  const started = new Map<string, number>();
  return (what, done, total) => {
    const key = what.replace(/\s*\(.*\)$/, '');
    // The clock starts at the first report of a piece of work (done 0 when the caller reports its
    // start); until a rate exists the ETA of unfinished work is unknown rather than 0.
    if (!started.has(key) || done === 0) started.set(key, Date.now());
    const secs = (Date.now() - started.get(key)!) / 1000;
    const rate = secs > 0 ? done / secs : 0;
    const eta = done >= total ? '0 s' : rate > 0 ? `${((total - done) / rate).toFixed(0)} s` : '?';
    const line = `${what} ${done}/${total} (${rate.toFixed(1)}/s, eta ${eta})`;
    if (stream.isTTY) {
      stream.write(`\r\x1b[K${line}${done === total ? '\n' : ''}`);
    } else if (Date.now() - last > 5000 || done === total || key !== lastWhat) {
      last = Date.now();
      lastWhat = key;
      stream.write(line + '\n');
    }
  };
}
