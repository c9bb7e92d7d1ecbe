/**
 * Bounded-memory counting for the dataset scanner: a count-min sketch (conservative update) for document
 * frequencies of prompt n-grams, whose estimate never undercounts, so a p-value computed from it errs towards
 * "ordinary" rather than towards a false alarm.
 *
 * The rows are one array (row d at d·width) and the usual depth of 4 is unrolled: about a hundred n-grams per record
 * go through `addAll`, on the thread that must keep up with all the others.
 */
import { fmix } from "./text";

export class CountMinSketch {
	private readonly table: Uint32Array;
	private readonly mask: number;
	private readonly width: number;
	private readonly seeds: number[];
	private total = 0;

	constructor(
		readonly widthLog2 = 21,
		readonly depth = 4,
		/** the counters of a sketch of this shape made elsewhere (another thread's `counters`) */
		counters?: Uint32Array,
	) {
		this.width = 1 << widthLog2;
		this.mask = this.width - 1;
		if (counters !== undefined && counters.length !== depth * this.width)
			throw new RangeError("sketch counters of another shape");
		this.table = counters ?? new Uint32Array(depth * this.width);
		this.seeds = Array.from({ length: depth }, (_, i) => fmix(0x9e3779b9 * (i + 1)));
	}

	/** Count `h` once (conservative update: only the rows at the current minimum grow). */
	add(h: number): void {
		this.total++;
		const t = this.table;
		let min = 0xffffffff;
		for (let d = 0; d < this.depth; d++) {
			const v = t[d * this.width + (fmix(h ^ (this.seeds[d] as number)) & this.mask)] as number;
			if (v < min) min = v;
		}
		for (let d = 0; d < this.depth; d++) {
			const k = d * this.width + (fmix(h ^ (this.seeds[d] as number)) & this.mask);
			if ((t[k] as number) === min) t[k] = min + 1;
		}
	}

	/** `add` of each of `hashes[from, to)`, in order. */
	addAll(hashes: Int32Array, from: number, to: number): void {
		if (this.depth !== 4) {
			for (let i = from; i < to; i++) this.add(hashes[i] as number);
			return;
		}
		this.total += to - from;
		const t = this.table;
		const m = this.mask;
		const w = this.width;
		const s0 = this.seeds[0] as number;
		const s1 = this.seeds[1] as number;
		const s2 = this.seeds[2] as number;
		const s3 = this.seeds[3] as number;
		for (let i = from; i < to; i++) {
			const h = hashes[i] as number;
			const k0 = fmix(h ^ s0) & m;
			const k1 = w + (fmix(h ^ s1) & m);
			const k2 = 2 * w + (fmix(h ^ s2) & m);
			const k3 = 3 * w + (fmix(h ^ s3) & m);
			const v0 = t[k0] as number;
			const v1 = t[k1] as number;
			const v2 = t[k2] as number;
			const v3 = t[k3] as number;
			const min = Math.min(v0, v1, v2, v3);
			// rows at the minimum grow (the values read above stay right: two rows of one hash never share a counter)
			if (v0 === min) t[k0] = min + 1;
			if (v1 === min) t[k1] = min + 1;
			if (v2 === min) t[k2] = min + 1;
			if (v3 === min) t[k3] = min + 1;
		}
	}

	/** An upper bound of how often `h` was added. */
	estimate(h: number): number {
		let min = 0xffffffff;
		for (let d = 0; d < this.depth; d++) {
			const v = this.table[d * this.width + (fmix(h ^ (this.seeds[d] as number)) & this.mask)] as number;
			if (v < min) min = v;
		}
		return min;
	}

	/** The counters (to hand to another thread). */
	get counters(): Uint32Array {
		return this.table;
	}

	get additions(): number {
		return this.total;
	}
}
