/**
 * Softmax of a row of logits and its Shannon entropy in bits (STRIP's score of
 * a superimposed input).
 */
/** Numerically stable softmax of logits[off .. off+c). */
export function softmax(logits: ArrayLike<number>, off = 0, c = logits.length - off): Float64Array {
	let mx = Number.NEGATIVE_INFINITY;
	for (let j = 0; j < c; j++) mx = Math.max(mx, logits[off + j] as number);
	const p = new Float64Array(c);
	let s = 0;
	for (let j = 0; j < c; j++) {
		const e = Math.exp((logits[off + j] as number) - mx);
		p[j] = e;
		s += e;
	}
	for (let j = 0; j < c; j++) p[j] = (p[j] as number) / s;
	return p;
}

/** Shannon entropy in bits, −Σ p log2 p, of the softmax of logits[off .. off+c). */
export function softmaxEntropy(logits: ArrayLike<number>, off = 0, c = logits.length - off): number {
	const p = softmax(logits, off, c);
	let h = 0;
	for (let j = 0; j < c; j++) {
		const q = p[j] as number;
		if (q > 0) h -= q * Math.log2(q);
	}
	return h;
}
