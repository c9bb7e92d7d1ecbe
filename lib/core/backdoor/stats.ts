/**
 * Statistics for the backdoor detectors: median and the MAD anomaly index
 * (Neural Cleanse), PCA, 2-means and the silhouette score (activation
 * clustering), softmax entropy (STRIP), and a small seeded PRNG. Everything is
 * deterministic: no Math.random, fixed iteration orders, sign-normalised
 * eigenvectors, seeded k-means++ initialisation.
 */

/** xoshiro128** (Blackman & Vigna), seeded through splitmix32. */
export class Rng {
	private s0: number;
	private s1: number;
	private s2: number;
	private s3: number;
	private spare: number | undefined;

	constructor(seed: number, ...streams: number[]) {
		let x = mix32(seed >>> 0 || 0x9e3779b9);
		for (const s of streams) x = mix32((x ^ (s >>> 0)) + 0x7f4a7c15);
		const next = () => {
			x = (x + 0x9e3779b9) >>> 0;
			return mix32(x);
		};
		this.s0 = next();
		this.s1 = next();
		this.s2 = next();
		this.s3 = next();
		if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
	}

	/** Uniform unsigned 32-bit integer. */
	nextU32(): number {
		const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
		const t = this.s1 << 9;
		this.s2 ^= this.s0;
		this.s3 ^= this.s1;
		this.s1 ^= this.s2;
		this.s0 ^= this.s3;
		this.s2 ^= t;
		this.s3 = rotl(this.s3, 11);
		return result;
	}

	/** Uniform in the open interval (0, 1). */
	uniform(): number {
		return (this.nextU32() + 0.5) / 4294967296;
	}

	/** Uniform integer in [0, n). */
	int(n: number): number {
		return Math.floor(this.uniform() * n);
	}

	/** Standard normal (Box–Muller, the spare value kept). */
	normal(): number {
		if (this.spare !== undefined) {
			const s = this.spare;
			this.spare = undefined;
			return s;
		}
		const u = this.uniform();
		const v = this.uniform();
		const r = Math.sqrt(-2 * Math.log(u));
		this.spare = r * Math.sin(2 * Math.PI * v);
		return r * Math.cos(2 * Math.PI * v);
	}

	/** Fisher–Yates shuffle in place. */
	shuffle<T extends { length: number; [i: number]: unknown }>(a: T): T {
		for (let i = a.length - 1; i > 0; i--) {
			const j = this.int(i + 1);
			const t = a[i];
			a[i] = a[j];
			a[j] = t;
		}
		return a;
	}

	/** A random permutation of 0..n-1. */
	permutation(n: number): Int32Array {
		const p = new Int32Array(n);
		for (let i = 0; i < n; i++) p[i] = i;
		return this.shuffle(p);
	}
}

function rotl(x: number, k: number): number {
	return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function mix32(z: number): number {
	z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
	z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
	return (z ^ (z >>> 16)) >>> 0;
}

type Num = ArrayLike<number>;

export function mean(a: Num): number {
	let s = 0;
	for (let i = 0; i < a.length; i++) s += a[i] as number;
	return a.length === 0 ? Number.NaN : s / a.length;
}

/** Population standard deviation. */
export function std(a: Num): number {
	const m = mean(a);
	let s = 0;
	for (let i = 0; i < a.length; i++) s += ((a[i] as number) - m) ** 2;
	return a.length === 0 ? Number.NaN : Math.sqrt(s / a.length);
}

/** Smallest and largest value (±Infinity when empty): the input range of reference data. */
export function minMax(x: Num): { lo: number; hi: number } {
	let lo = Number.POSITIVE_INFINITY;
	let hi = Number.NEGATIVE_INFINITY;
	for (let i = 0; i < x.length; i++) {
		const v = x[i] as number;
		if (v < lo) lo = v;
		if (v > hi) hi = v;
	}
	return { lo, hi };
}

/** Median (the mean of the two middle values for an even count; NaN when empty). */
export function median(a: Num): number {
	const s = Float64Array.from(a).sort();
	const n = s.length;
	if (n === 0) return Number.NaN;
	const h = n >> 1;
	return n % 2 ? (s[h] as number) : ((s[h - 1] as number) + (s[h] as number)) / 2;
}

/** Quantile q ∈ [0, 1] with linear interpolation (numpy's default). */
export function quantile(a: Num, q: number): number {
	const s = Float64Array.from(a).sort();
	const n = s.length;
	if (n === 0) return Number.NaN;
	const pos = Math.min(Math.max(q, 0), 1) * (n - 1);
	const lo = Math.floor(pos);
	const hi = Math.min(lo + 1, n - 1);
	return (s[lo] as number) + (pos - lo) * ((s[hi] as number) - (s[lo] as number));
}

export const MAD_CONSISTENCY = 1.4826;

export interface AnomalyResult {
	median: number;
	/** consistency · median(|x − median|) */
	mad: number;
	/** |x − median| / mad; with mad = 0, 0 for values at the median and Infinity for the rest */
	indices: number[];
	/** positions i with x[i] ≤ median and index > threshold (Neural Cleanse's vanilla rule) */
	flagged: number[];
}

/** The Neural Cleanse anomaly index (docs/backdoor.md): flags unusually small values. */
export function madAnomaly(values: Num, threshold = 2): AnomalyResult {
	const med = median(values);
	const dev = Array.from(values, (v) => Math.abs(v - med));
	const mad = MAD_CONSISTENCY * median(dev);
	const indices = dev.map((d) => (mad > 0 ? d / mad : d === 0 ? 0 : Number.POSITIVE_INFINITY));
	const flagged: number[] = [];
	for (let i = 0; i < values.length; i++) {
		if ((values[i] as number) <= med && (indices[i] as number) > threshold) flagged.push(i);
	}
	return { median: med, mad, indices, flagged };
}

/** Numerically stable softmax of logits[off .. off+c). */
export function softmax(logits: Num, off = 0, c = logits.length - off): Float64Array {
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
export function softmaxEntropy(logits: Num, off = 0, c = logits.length - off): number {
	const p = softmax(logits, off, c);
	let h = 0;
	for (let j = 0; j < c; j++) {
		const q = p[j] as number;
		if (q > 0) h -= q * Math.log2(q);
	}
	return h;
}

/** Eigen-decomposition of a symmetric m×m matrix (row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(a: Num, m: number): { values: Float64Array; vectors: Float64Array } {
	const A = Float64Array.from(a);
	const V = new Float64Array(m * m);
	for (let i = 0; i < m; i++) V[i * m + i] = 1;
	for (let sweep = 0; sweep < 100; sweep++) {
		let off = 0;
		let diag = 0;
		for (let i = 0; i < m; i++) {
			diag += (A[i * m + i] as number) ** 2;
			for (let j = i + 1; j < m; j++) off += (A[i * m + j] as number) ** 2;
		}
		if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
		for (let p = 0; p < m; p++) {
			for (let q = p + 1; q < m; q++) {
				const apq = A[p * m + q] as number;
				if (apq === 0) continue;
				const app = A[p * m + p] as number;
				const aqq = A[q * m + q] as number;
				const theta = (aqq - app) / (2 * apq);
				const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
				const c = 1 / Math.sqrt(t * t + 1);
				const s = t * c;
				for (let k = 0; k < m; k++) {
					const akp = A[k * m + p] as number;
					const akq = A[k * m + q] as number;
					A[k * m + p] = c * akp - s * akq;
					A[k * m + q] = s * akp + c * akq;
				}
				for (let k = 0; k < m; k++) {
					const apk = A[p * m + k] as number;
					const aqk = A[q * m + k] as number;
					A[p * m + k] = c * apk - s * aqk;
					A[q * m + k] = s * apk + c * aqk;
				}
				for (let k = 0; k < m; k++) {
					const vkp = V[k * m + p] as number;
					const vkq = V[k * m + q] as number;
					V[k * m + p] = c * vkp - s * vkq;
					V[k * m + q] = s * vkp + c * vkq;
				}
			}
		}
	}
	// Sort by descending eigenvalue; vectors returned as rows, sign-normalised.
	const order = Array.from({ length: m }, (_, i) => i).sort(
		(i, j) => (A[j * m + j] as number) - (A[i * m + i] as number) || i - j,
	);
	const values = new Float64Array(m);
	const vectors = new Float64Array(m * m);
	order.forEach((col, r) => {
		values[r] = A[col * m + col] as number;
		for (let k = 0; k < m; k++) vectors[r * m + k] = V[k * m + col] as number;
	});
	normaliseSigns(vectors, m, m);
	return { values, vectors };
}

/** Flips each row so that its largest-magnitude entry is positive (first such entry on ties). */
function normaliseSigns(rows: Float64Array, k: number, d: number): void {
	for (let r = 0; r < k; r++) {
		let best = 0;
		for (let j = 1; j < d; j++)
			if (Math.abs(rows[r * d + j] as number) > Math.abs(rows[r * d + best] as number) + 1e-12) best = j;
		if ((rows[r * d + best] as number) < 0) for (let j = 0; j < d; j++) rows[r * d + j] = -(rows[r * d + j] as number);
	}
}

export interface Pca {
	/** number of components kept */
	k: number;
	dim: number;
	mean: Float64Array;
	/** [k, dim] unit rows, descending variance */
	components: Float64Array;
	/** variance along each component */
	variances: Float64Array;
	/** [n, k] projections of the fitted data */
	projected: Float64Array;
}

/** Largest dimension handled with the d×d covariance; above it (and n < d) the n×n Gram matrix is used. */
const JACOBI_LIMIT = 160;

/**
 * PCA of n rows of dimension d, keeping k = min(k, d, n) components. Exact
 * (Jacobi) on the covariance when d is small, on the Gram matrix when n is; when
 * both are large, orthogonal subspace iteration on the covariance from a fixed
 * start with a Jacobi Rayleigh–Ritz step. Deterministic.
 */
export function pca(data: Num, n: number, d: number, kWanted: number): Pca {
	const k = Math.max(0, Math.min(kWanted, d, n));
	const mu = new Float64Array(d);
	for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mu[j] = (mu[j] as number) + (data[i * d + j] as number);
	for (let j = 0; j < d; j++) mu[j] = (mu[j] as number) / Math.max(n, 1);
	const X = new Float64Array(n * d);
	for (let i = 0; i < n; i++)
		for (let j = 0; j < d; j++) X[i * d + j] = (data[i * d + j] as number) - (mu[j] as number);
	const denom = Math.max(n - 1, 1);
	const components = new Float64Array(k * d);
	const variances = new Float64Array(k);
	if (d <= JACOBI_LIMIT || (n > JACOBI_LIMIT && n >= d)) {
		const C = covariance(X, n, d, denom);
		if (d <= JACOBI_LIMIT) {
			const e = symmetricEigen(C, d);
			components.set(e.vectors.subarray(0, k * d));
			for (let r = 0; r < k; r++) variances[r] = Math.max(e.values[r] as number, 0);
		} else subspaceTop(C, d, k, components, variances);
	} else {
		// n small: eigenvectors of X Xᵀ map to those of Xᵀ X through Xᵀ u / ‖Xᵀ u‖.
		const G = new Float64Array(n * n);
		for (let a = 0; a < n; a++)
			for (let b = a; b < n; b++) {
				let s = 0;
				for (let j = 0; j < d; j++) s += (X[a * d + j] as number) * (X[b * d + j] as number);
				G[a * n + b] = s / denom;
				G[b * n + a] = s / denom;
			}
		const e = symmetricEigen(G, n);
		for (let r = 0; r < k; r++) {
			variances[r] = Math.max(e.values[r] as number, 0);
			let norm = 0;
			for (let j = 0; j < d; j++) {
				let s = 0;
				for (let a = 0; a < n; a++) s += (X[a * d + j] as number) * (e.vectors[r * n + a] as number);
				components[r * d + j] = s;
				norm += s * s;
			}
			norm = Math.sqrt(norm) || 1;
			for (let j = 0; j < d; j++) components[r * d + j] = (components[r * d + j] as number) / norm;
		}
		normaliseSigns(components, k, d);
	}
	const projected = new Float64Array(n * k);
	for (let i = 0; i < n; i++)
		for (let r = 0; r < k; r++) {
			let s = 0;
			for (let j = 0; j < d; j++) s += (X[i * d + j] as number) * (components[r * d + j] as number);
			projected[i * k + r] = s;
		}
	return { k, dim: d, mean: mu, components, variances, projected };
}

function covariance(X: Float64Array, n: number, d: number, denom: number): Float64Array {
	const C = new Float64Array(d * d);
	for (let i = 0; i < n; i++) {
		const o = i * d;
		for (let a = 0; a < d; a++) {
			const xa = X[o + a] as number;
			if (xa === 0) continue;
			const ro = a * d;
			for (let b = a; b < d; b++) C[ro + b] = (C[ro + b] as number) + xa * (X[o + b] as number);
		}
	}
	for (let a = 0; a < d; a++)
		for (let b = a; b < d; b++) {
			const v = (C[a * d + b] as number) / denom;
			C[a * d + b] = v;
			C[b * d + a] = v;
		}
	return C;
}

/** Top-k eigenpairs of a symmetric d×d matrix by orthogonal subspace iteration + Rayleigh–Ritz. */
function subspaceTop(C: Float64Array, d: number, k: number, out: Float64Array, vals: Float64Array): void {
	const p = Math.min(d, k + 8);
	const rng = new Rng(0x5ca1ab1e);
	let Q = new Float64Array(p * d);
	for (let i = 0; i < Q.length; i++) Q[i] = rng.normal();
	orthonormalRows(Q, p, d);
	const Z = new Float64Array(p * d);
	let prev = new Float64Array(k);
	for (let it = 0; it < 300; it++) {
		for (let r = 0; r < p; r++)
			for (let a = 0; a < d; a++) {
				let s = 0;
				for (let b = 0; b < d; b++) s += (C[a * d + b] as number) * (Q[r * d + b] as number);
				Z[r * d + a] = s;
			}
		const norms = new Float64Array(k);
		for (let r = 0; r < k; r++) {
			let s = 0;
			for (let a = 0; a < d; a++) s += (Q[r * d + a] as number) * (Z[r * d + a] as number);
			norms[r] = s;
		}
		Q = Float64Array.from(Z);
		orthonormalRows(Q, p, d);
		let change = 0;
		for (let r = 0; r < k; r++)
			change = Math.max(
				change,
				Math.abs((norms[r] as number) - (prev[r] as number)) / (Math.abs(norms[r] as number) + 1e-300),
			);
		prev = norms;
		if (it > 10 && change < 1e-10) break;
	}
	// Rayleigh–Ritz: H = Q C Qᵀ (p×p), rotate Q by H's eigenvectors.
	const CQ = new Float64Array(p * d);
	for (let r = 0; r < p; r++)
		for (let a = 0; a < d; a++) {
			let s = 0;
			for (let b = 0; b < d; b++) s += (C[a * d + b] as number) * (Q[r * d + b] as number);
			CQ[r * d + a] = s;
		}
	const H = new Float64Array(p * p);
	for (let r = 0; r < p; r++)
		for (let c = 0; c < p; c++) {
			let s = 0;
			for (let a = 0; a < d; a++) s += (Q[r * d + a] as number) * (CQ[c * d + a] as number);
			H[r * p + c] = s;
		}
	for (let r = 0; r < p; r++)
		for (let c = r + 1; c < p; c++) {
			const v = ((H[r * p + c] as number) + (H[c * p + r] as number)) / 2;
			H[r * p + c] = v;
			H[c * p + r] = v;
		}
	const e = symmetricEigen(H, p);
	for (let r = 0; r < k; r++) {
		vals[r] = Math.max(e.values[r] as number, 0);
		for (let a = 0; a < d; a++) {
			let s = 0;
			for (let c = 0; c < p; c++) s += (e.vectors[r * p + c] as number) * (Q[c * d + a] as number);
			out[r * d + a] = s;
		}
	}
	normaliseSigns(out, k, d);
}

/** Modified Gram–Schmidt on the rows (a row that vanishes is left zero). */
function orthonormalRows(Q: Float64Array, p: number, d: number): void {
	for (let r = 0; r < p; r++) {
		for (let q = 0; q < r; q++) {
			let dot = 0;
			for (let a = 0; a < d; a++) dot += (Q[r * d + a] as number) * (Q[q * d + a] as number);
			for (let a = 0; a < d; a++) Q[r * d + a] = (Q[r * d + a] as number) - dot * (Q[q * d + a] as number);
		}
		let norm = 0;
		for (let a = 0; a < d; a++) norm += (Q[r * d + a] as number) ** 2;
		norm = Math.sqrt(norm);
		for (let a = 0; a < d; a++) Q[r * d + a] = norm > 1e-300 ? (Q[r * d + a] as number) / norm : 0;
	}
}

export interface KMeansResult {
	/** cluster of each row, 0..k-1 */
	labels: Int32Array;
	/** [k, d] */
	centroids: Float64Array;
	/** sum of squared distances to the assigned centroid */
	inertia: number;
	sizes: number[];
}

function sqDist(a: Num, ao: number, b: Num, bo: number, d: number): number {
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
	data: Num,
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

function plusPlus(data: Num, n: number, d: number, k: number, rng: Rng): Float64Array {
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

function lloyd(data: Num, n: number, d: number, k: number, maxIter: number, C: Float64Array): KMeansResult {
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
	data: Num,
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
