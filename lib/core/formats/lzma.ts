/**
 * A decoder for the LZMA "alone" format (`.lzma`, what joblib writes with compress="lzma" and Python's lzma module
 * reads through liblzma), after Igor Pavlov's LzmaSpec reference decoder.
 *
 * Written here, not taken from npm, because a decoder of hostile input has to stop at a byte budget while it runs:
 * the pure-JS decoders on npm return the whole output when done (lzma, lzma1: a bomb is decoded in memory first) or
 * load through AMD and cannot be bundled (lzma-purejs). It errs towards decoding more than liblzma, never less: a
 * match may reach back over everything decoded so far (liblzma stops at a distance past its dictionary), so a loader
 * never reads bytes this decoder did not produce.
 */

export class LzmaError extends Error {}
/** Thrown when the output would pass its cap: the caller decides what an over-budget stream means. */
export class LzmaOverLimit extends Error {}

const PROB_INIT = 1024;

class RangeDecoder {
	range = 0xffffffff;
	code = 0;
	pos: number;
	constructor(
		private readonly input: Uint8Array,
		start: number,
	) {
		this.pos = start;
		// liblzma refuses a stream whose first range-coder byte is not 0
		if (this.byte() !== 0) throw new LzmaError("corrupt range coder start");
		for (let i = 0; i < 4; i++) this.code = ((this.code << 8) | this.byte()) >>> 0;
		if (this.code === this.range) throw new LzmaError("corrupt range coder start");
	}
	private byte(): number {
		if (this.pos >= this.input.length) throw new LzmaError("truncated lzma stream");
		return this.input[this.pos++] as number;
	}
	private normalize(): void {
		if (this.range < 0x1000000) {
			this.range = (this.range << 8) >>> 0;
			this.code = ((this.code << 8) | this.byte()) >>> 0;
		}
	}
	bit(probs: Uint16Array, i: number): number {
		const p = probs[i] as number;
		const bound = ((this.range >>> 11) * p) >>> 0;
		let b: number;
		if (this.code < bound) {
			probs[i] = p + ((2048 - p) >>> 5);
			this.range = bound;
			b = 0;
		} else {
			probs[i] = p - (p >>> 5);
			this.code = (this.code - bound) >>> 0;
			this.range = (this.range - bound) >>> 0;
			b = 1;
		}
		this.normalize();
		return b;
	}
	direct(n: number): number {
		let res = 0;
		for (let i = 0; i < n; i++) {
			this.range >>>= 1;
			let bit = 0;
			if (this.code >= this.range) {
				this.code = (this.code - this.range) >>> 0;
				bit = 1;
			}
			res = ((res << 1) | bit) >>> 0;
			this.normalize();
		}
		return res;
	}
	get finishedOk(): boolean {
		return this.code === 0;
	}
}

function tree(rc: RangeDecoder, probs: Uint16Array, base: number, bits: number): number {
	let m = 1;
	for (let i = 0; i < bits; i++) m = (m << 1) + rc.bit(probs, base + m);
	return m - (1 << bits);
}

function reverseTree(rc: RangeDecoder, probs: Uint16Array, base: number, bits: number): number {
	let m = 1;
	let sym = 0;
	for (let i = 0; i < bits; i++) {
		const b = rc.bit(probs, base + m);
		m = (m << 1) + b;
		sym |= b << i;
	}
	return sym >>> 0;
}

/** choice, choice2, low[16][8], mid[16][8], high[256]: one flat table. */
const LEN_LOW = 2;
const LEN_MID = LEN_LOW + 16 * 8;
const LEN_HIGH = LEN_MID + 16 * 8;
const LEN_SIZE = LEN_HIGH + 256;

function length(rc: RangeDecoder, p: Uint16Array, posState: number): number {
	if (rc.bit(p, 0) === 0) return tree(rc, p, LEN_LOW + posState * 8, 3);
	if (rc.bit(p, 1) === 0) return 8 + tree(rc, p, LEN_MID + posState * 8, 3);
	return 16 + tree(rc, p, LEN_HIGH, 8);
}

/** Output that doubles as the dictionary, capped. */
class Window {
	buf: Uint8Array;
	pos = 0;
	constructor(private readonly max: number) {
		this.buf = new Uint8Array(Math.min(max, 1 << 16));
	}
	put(b: number): void {
		if (this.pos === this.buf.length) this.grow(this.pos + 1);
		this.buf[this.pos++] = b;
	}
	private grow(need: number): void {
		if (need > this.max) throw new LzmaOverLimit();
		const next = new Uint8Array(Math.min(this.max, Math.max(need, this.buf.length * 2)));
		next.set(this.buf.subarray(0, this.pos));
		this.buf = next;
	}
	/** The byte `dist` back (1 = the last one). */
	back(dist: number): number {
		return this.buf[this.pos - dist] as number;
	}
	copy(dist: number, len: number): void {
		if (this.pos + len > this.buf.length) this.grow(this.pos + len);
		for (let i = 0; i < len; i++, this.pos++) this.buf[this.pos] = this.buf[this.pos - dist] as number;
	}
}

export interface LzmaResult {
	data: Uint8Array;
	/** Offset in the input just past this stream (where a concatenated stream may start). */
	end: number;
	/** Set when the stream broke after `data` was decoded. */
	error?: string;
}

/**
 * Decodes one .lzma stream starting at `start`, producing at most `maxBytes` (LzmaOverLimit past it). Errors in the
 * header throw LzmaError; errors later return the bytes decoded so far with `error`.
 */
export function decodeLzmaAlone(input: Uint8Array, start: number, maxBytes: number): LzmaResult {
	if (input.length - start < 13) throw new LzmaError("truncated lzma header");
	let d = input[start] as number;
	if (d >= 9 * 5 * 5) throw new LzmaError("bad lzma properties byte");
	const lc = d % 9;
	d = (d / 9) | 0;
	const lp = d % 5;
	const pb = (d / 5) | 0;
	const view = new DataView(input.buffer, input.byteOffset + start, 13);
	const lo = view.getUint32(5, true);
	const hi = view.getUint32(9, true);
	// all ones = unknown size, ended by the end marker
	const sized = !(lo === 0xffffffff && hi === 0xffffffff);
	let remaining = sized ? hi * 2 ** 32 + lo : Number.POSITIVE_INFINITY;

	const rc = new RangeDecoder(input, start + 13);
	const out = new Window(maxBytes);
	const lit = new Uint16Array(0x300 << (lc + lp)).fill(PROB_INIT);
	const isMatch = new Uint16Array(12 << 4).fill(PROB_INIT);
	const isRep = new Uint16Array(12).fill(PROB_INIT);
	const isRepG0 = new Uint16Array(12).fill(PROB_INIT);
	const isRepG1 = new Uint16Array(12).fill(PROB_INIT);
	const isRepG2 = new Uint16Array(12).fill(PROB_INIT);
	const isRep0Long = new Uint16Array(12 << 4).fill(PROB_INIT);
	const posSlot = new Uint16Array(4 << 6).fill(PROB_INIT);
	const posDecoders = new Uint16Array(1 + 128 - 14).fill(PROB_INIT);
	const align = new Uint16Array(1 << 4).fill(PROB_INIT);
	const lenProbs = new Uint16Array(LEN_SIZE).fill(PROB_INIT);
	const repLenProbs = new Uint16Array(LEN_SIZE).fill(PROB_INIT);
	const pbMask = (1 << pb) - 1;
	const lpMask = (1 << lp) - 1;

	let state = 0;
	let rep0 = 0;
	let rep1 = 0;
	let rep2 = 0;
	let rep3 = 0;
	const done = (error?: string): LzmaResult => ({
		data: out.buf.subarray(0, out.pos),
		end: rc.pos,
		...(error ? { error } : {}),
	});

	try {
		for (;;) {
			if (remaining === 0) return done();
			const posState = out.pos & pbMask;
			if (rc.bit(isMatch, (state << 4) + posState) === 0) {
				const prev = out.pos > 0 ? out.back(1) : 0;
				const base = 0x300 * (((out.pos & lpMask) << lc) + (prev >>> (8 - lc)));
				let sym = 1;
				if (state >= 7) {
					let match = out.back(rep0 + 1);
					do {
						const matchBit = (match >>> 7) & 1;
						match <<= 1;
						const b = rc.bit(lit, base + ((1 + matchBit) << 8) + sym);
						sym = (sym << 1) | b;
						if (matchBit !== b) break;
					} while (sym < 0x100);
				}
				while (sym < 0x100) sym = (sym << 1) | rc.bit(lit, base + sym);
				out.put(sym - 0x100);
				state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
				remaining--;
				continue;
			}
			let len: number;
			if (rc.bit(isRep, state) !== 0) {
				if (out.pos === 0) return done("lzma: repeated match before any output");
				if (rc.bit(isRepG0, state) === 0) {
					if (rc.bit(isRep0Long, (state << 4) + posState) === 0) {
						state = state < 7 ? 9 : 11;
						out.put(out.back(rep0 + 1));
						remaining--;
						continue;
					}
				} else {
					let dist: number;
					if (rc.bit(isRepG1, state) === 0) dist = rep1;
					else {
						if (rc.bit(isRepG2, state) === 0) dist = rep2;
						else {
							dist = rep3;
							rep3 = rep2;
						}
						rep2 = rep1;
					}
					rep1 = rep0;
					rep0 = dist;
				}
				len = length(rc, repLenProbs, posState);
				state = state < 7 ? 8 : 11;
			} else {
				rep3 = rep2;
				rep2 = rep1;
				rep1 = rep0;
				len = length(rc, lenProbs, posState);
				state = state < 7 ? 7 : 10;
				rep0 = distance(rc, len, posSlot, posDecoders, align);
				if (rep0 === 0xffffffff) return rc.finishedOk ? done() : done("lzma: data after the end marker");
				if (rep0 >= out.pos) return done("lzma: match distance past the start");
			}
			len += 2;
			let cut = false;
			if (len > remaining) {
				len = remaining;
				cut = true;
			}
			out.copy(rep0 + 1, len);
			remaining -= len;
			if (cut) return done("lzma: match runs past the declared size");
		}
	} catch (e) {
		if (e instanceof LzmaOverLimit) throw e;
		if (e instanceof LzmaError) return done(e.message);
		throw e;
	}
}

function distance(rc: RangeDecoder, len: number, posSlot: Uint16Array, posDecoders: Uint16Array, align: Uint16Array) {
	const lenState = Math.min(len, 3);
	const slot = tree(rc, posSlot, lenState << 6, 6);
	if (slot < 4) return slot;
	const directBits = (slot >>> 1) - 1;
	let dist = ((2 | (slot & 1)) << directBits) >>> 0;
	if (slot < 14) return (dist + reverseTree(rc, posDecoders, dist - slot, directBits)) >>> 0;
	dist = (dist + ((rc.direct(directBits - 4) << 4) >>> 0)) >>> 0;
	return (dist + reverseTree(rc, align, 0, 4)) >>> 0;
}
