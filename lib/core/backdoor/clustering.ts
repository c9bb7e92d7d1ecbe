/**
 * Clustering for Activation Clustering: k-means (seeded k-means++ starts, the
 * best of several runs) and the silhouette score. Deterministic for a seed.
 */
import { Rng } from "./rng";

export interface KMeansResult {
	/** cluster of each row, 0..k-1 */
	labels: Int32Array;
	/** [k, d] */
	centroids: Float64Array;
	/** sum of squared distances to the assigned centroid */
	inertia: number;
	sizes: number[];
}

function sqDist(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, d: number): number {
	let s = 0;
	for (let j = 0; j < d; j++) {
		const t = (a[ao + j] as number) - (b[bo + j] as number);
		s += t * t;
	}
	return s;
}

/**
 * Lloyd's k-means with k-means++ initialisation from a seeded PRNG; `inits`
 * independent runs, the lowest inertia kept (first on ties). Deterministic.
 */
export function kmeans(
	data: ArrayLike<number>,
	n: number,
	d: number,
	k: number,
	opts: { seed?: number; inits?: number; maxIter?: number } = {},
): KMeansResult {
	const rng = new Rng(opts.seed ?? 0, 0x6b6d);
	const inits = opts.inits ?? 10;
	const maxIter = opts.maxIter ?? 300;
	let best: KMeansResult | undefined;
	for (let run = 0; run < inits; run++) {
		const r = lloyd(data, n, d, Math.min(k, n), maxIter, plusPlus(data, n, d, Math.min(k, n), rng));
		if (!best || r.inertia < best.inertia) best = r;
	}
	if (!best) throw new Error("kmeans: no run");
	return best;
}

function plusPlus(data: ArrayLike<number>, n: number, d: number, k: number, rng: Rng): Float64Array {
	const C = new Float64Array(k * d);
	const first = rng.int(n);
	for (let j = 0; j < d; j++) C[j] = data[first * d + j] as number;
	const dist = new Float64Array(n);
	for (let i = 0; i < n; i++) dist[i] = sqDist(data, i * d, C, 0, d);
	for (let c = 1; c < k; c++) {
		let total = 0;
		for (let i = 0; i < n; i++) total += dist[i] as number;
		let pick = 0;
		if (total > 0) {
			let u = rng.uniform() * total;
			pick = n - 1;
			for (let i = 0; i < n; i++) {
				u -= dist[i] as number;
				if (u < 0) {
					pick = i;
					break;
				}
			}
		} else pick = rng.int(n);
		for (let j = 0; j < d; j++) C[c * d + j] = data[pick * d + j] as number;
		for (let i = 0; i < n; i++) dist[i] = Math.min(dist[i] as number, sqDist(data, i * d, C, c * d, d));
	}
	return C;
}

function lloyd(
	data: ArrayLike<number>,
	n: number,
	d: number,
	k: number,
	maxIter: number,
	C: Float64Array,
): KMeansResult {
	const labels = new Int32Array(n).fill(-1);
	const sizes = new Array<number>(k).fill(0);
	for (let it = 0; it < maxIter; it++) {
		let changed = false;
		for (let i = 0; i < n; i++) {
			let bc = 0;
			let bd = Number.POSITIVE_INFINITY;
			for (let c = 0; c < k; c++) {
				const dd = sqDist(data, i * d, C, c * d, d);
				if (dd < bd) {
					bd = dd;
					bc = c;
				}
			}
			if (labels[i] !== bc) {
				labels[i] = bc;
				changed = true;
			}
		}
		if (!changed) break;
		const sums = new Float64Array(k * d);
		sizes.fill(0);
		for (let i = 0; i < n; i++) {
			const c = labels[i] as number;
			sizes[c] = (sizes[c] as number) + 1;
			for (let j = 0; j < d; j++) sums[c * d + j] = (sums[c * d + j] as number) + (data[i * d + j] as number);
		}
		// An emptied cluster keeps its centroid.
		for (let c = 0; c < k; c++)
			if ((sizes[c] as number) > 0)
				for (let j = 0; j < d; j++) C[c * d + j] = (sums[c * d + j] as number) / (sizes[c] as number);
	}
	sizes.fill(0);
	let inertia = 0;
	for (let i = 0; i < n; i++) {
		const c = labels[i] as number;
		sizes[c] = (sizes[c] as number) + 1;
		inertia += sqDist(data, i * d, C, c * d, d);
	}
	return { labels, centroids: C, inertia, sizes };
}

/**
 * Mean silhouette coefficient (Euclidean), as scikit-learn: a point alone in its
 * cluster scores 0, and fewer than two non-empty clusters give 0. With more than
 * `maxSamples` rows the mean is taken over a seeded sample of them (distances
 * still to all rows).
 */
export function silhouette(
	data: ArrayLike<number>,
	n: number,
	d: number,
	labels: ArrayLike<number>,
	opts: { maxSamples?: number; seed?: number } = {},
): number {
	let k = 0;
	for (let i = 0; i < n; i++) k = Math.max(k, (labels[i] as number) + 1);
	const sizes = new Array<number>(k).fill(0);
	for (let i = 0; i < n; i++) sizes[labels[i] as number] = (sizes[labels[i] as number] as number) + 1;
	if (sizes.filter((s) => s > 0).length < 2) return 0;
	const maxSamples = opts.maxSamples ?? 4000;
	let rows: ArrayLike<number>;
	if (n > maxSamples) rows = new Rng(opts.seed ?? 0, 0x5113).permutation(n).subarray(0, maxSamples).sort();
	else rows = Int32Array.from({ length: n }, (_, i) => i);
	let total = 0;
	const sums = new Float64Array(k);
	for (let t = 0; t < rows.length; t++) {
		const i = rows[t] as number;
		sums.fill(0);
		for (let j = 0; j < n; j++) {
			if (j === i) continue;
			const lj = labels[j] as number;
			sums[lj] = (sums[lj] as number) + Math.sqrt(sqDist(data, i * d, data, j * d, d));
		}
		const li = labels[i] as number;
		const own = sizes[li] as number;
		if (own <= 1) continue;
		const a = (sums[li] as number) / (own - 1);
		let b = Number.POSITIVE_INFINITY;
		for (let c = 0; c < k; c++)
			if (c !== li && (sizes[c] as number) > 0) b = Math.min(b, (sums[c] as number) / (sizes[c] as number));
		const m = Math.max(a, b);
		total += m > 0 ? (b - a) / m : 0;
	}
	return total / rows.length;
}
