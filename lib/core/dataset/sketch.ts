/**
 * Bounded-memory counting for the dataset scanner: a count-min sketch (conservative update) for document
 * frequencies of prompt n-grams, whose estimate never undercounts, so a p-value computed from it errs towards
 * "ordinary" rather than towards a false alarm.
 */
import { fmix } from "./text";

export class CountMinSketch {
	private readonly rows: Uint32Array[];
	private readonly mask: number;
	private readonly seeds: number[];
	private total = 0;

	constructor(
		readonly widthLog2 = 21,
		readonly depth = 4,
	) {
		this.mask = (1 << widthLog2) - 1;
		this.rows = Array.from({ length: depth }, () => new Uint32Array(1 << widthLog2));
		this.seeds = Array.from({ length: depth }, (_, i) => fmix(0x9e3779b9 * (i + 1)));
	}

	/** Count `h` once (conservative update: only the rows at the current minimum grow). */
	add(h: number): void {
		this.total++;
		let min = 0xffffffff;
		const idx = this.idx;
		for (let d = 0; d < this.depth; d++) {
			idx[d] = fmix(h ^ (this.seeds[d] as number)) & this.mask;
			const v = (this.rows[d] as Uint32Array)[idx[d] as number] as number;
			if (v < min) min = v;
		}
		for (let d = 0; d < this.depth; d++) {
			const row = this.rows[d] as Uint32Array;
			const i = idx[d] as number;
			if ((row[i] as number) === min) row[i] = min + 1;
		}
	}

	private readonly idx = new Int32Array(8);

	/** An upper bound of how often `h` was added. */
	estimate(h: number): number {
		let min = 0xffffffff;
		for (let d = 0; d < this.depth; d++) {
			const v = (this.rows[d] as Uint32Array)[fmix(h ^ (this.seeds[d] as number)) & this.mask] as number;
			if (v < min) min = v;
		}
		return min;
	}

	get additions(): number {
		return this.total;
	}
}
