// Step 2, a ParallelTask: its input is what fetch returned.
export function* split({ text }) {
  const lines = text.split('\n').filter((line) => line.trim() !== '');
  for (let first = 0; first < lines.length; first += 3) {
    yield lines.slice(first, first + 3).join(' ');
  }
}

export function work(chunk) {
  const counts = {};
  for (const word of chunk.toLowerCase().match(/[a-z']+/g) ?? []) {
    counts[word] = (counts[word] ?? 0) + 1;
  }
  return counts;
}

export async function reduce(results) {
  const totals = {};
  for await (const counts of results) {
    for (const [word, n] of Object.entries(counts ?? {})) {
      totals[word] = (totals[word] ?? 0) + n;
    }
  }
  return totals;
}
