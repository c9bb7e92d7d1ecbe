/**
 * Linear algebra for Activation Clustering: symmetric eigen-decomposition
 * (cyclic Jacobi) and PCA. Deterministic: fixed iteration orders, a seeded
 * start for subspace iteration, sign-normalised eigenvectors.
 */
import { Rng } from "./rng";

/** Eigen-decomposition of a symmetric m×m matrix (row-major) by cyclic Jacobi rotations. */
export function symmetricEigen(a: ArrayLike<number>, m: number): { values: Float64Array; vectors: Float64Array } {
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
export function pca(data: ArrayLike<number>, n: number, d: number, kWanted: number): Pca {
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
