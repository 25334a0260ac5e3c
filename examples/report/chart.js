// Step 3a (runs at the same time as summary, on the same input: the word counts).
export default function chart(counts) {
  const top = Object.entries(counts).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, 5);
  const widest = top[0]?.[1] ?? 1;
  return top.map(([word, n]) => `${word.padEnd(8)} ${'#'.repeat(Math.max(1, Math.round((n / widest) * 30)))} ${n}`);
}
