/**
 * Numbers written the way the Rust `order` plugin writes them, so that both plugins record
 * the same reasons and rows: `{:.2}` rounds the exact binary value half to even (0.125 →
 * "0.12", where JavaScript's `toFixed` says "0.13"), `{}` never uses an exponent, and
 * `f64::round` rounds half away from zero (JavaScript's `Math.round` rounds -0.5 to -0).
 */

/** `x` with two decimals, as Rust's `format!("{x:.2}")`. */
export function fixed2(x: number): string {
  if (Number.isNaN(x)) {
    return 'NaN';
  }
  if (!Number.isFinite(x)) {
    return x > 0 ? 'inf' : '-inf';
  }
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const magnitude = Math.abs(x);
  if (magnitude >= 1e21) {
    return `${sign}${BigInt(magnitude)}.00`;
  }
  // A tie at the third decimal is exactly representable only as k + j/8 with j odd.
  const eighths = magnitude * 8;
  if (Number.isInteger(eighths) && eighths % 2 === 1) {
    const below = Math.floor(magnitude * 100);
    const cents = below % 2 === 0 ? below : below + 1;
    return `${sign}${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
  }
  return sign + magnitude.toFixed(2);
}

/** `x` as Rust's `format!("{x}")` writes an `f64`: shortest form, never an exponent. */
export function display(x: number): string {
  if (Number.isNaN(x)) {
    return 'NaN';
  }
  if (!Number.isFinite(x)) {
    return x > 0 ? 'inf' : '-inf';
  }
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const text = String(Math.abs(x));
  const exponent = text.indexOf('e');
  if (exponent < 0) {
    return sign + text;
  }
  const [mantissa, power] = [text.slice(0, exponent), Number(text.slice(exponent + 1))];
  const [whole, fraction = ''] = mantissa.split('.');
  const digits = whole + fraction;
  const point = whole.length + power;
  if (point <= 0) {
    return `${sign}0.${'0'.repeat(-point)}${digits}`;
  }
  if (point >= digits.length) {
    return sign + digits + '0'.repeat(point - digits.length);
  }
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

/** Rust's `f64::round`: to the nearest integer, half away from zero. */
export function roundHalfAwayFromZero(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** A string quoted as Rust's `{:?}` quotes it (close enough: JSON escapes). */
export function quoted(text: string): string {
  return JSON.stringify(text);
}
