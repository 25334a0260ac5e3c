// Step 3b.
export default function summary(counts) {
  const values = Object.values(counts);
  return { words: values.reduce((sum, n) => sum + n, 0), distinct: values.length };
}
