/** The benches' one way to read a numeric knob from the environment: checked, never NaN. */

/** `name` as an integer of at least `min`; `fallback` when unset or empty. Throws on anything else. */
export function envInt(name: string, fallback: number, min = 1): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`Expected ${name} to be an integer of at least ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}
