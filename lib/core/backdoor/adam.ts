/**
 * Adam (Kingma & Ba) on a Float32Array of parameters, following
 * torch.optim.Adam (no weight decay, no amsgrad):
 *   m ← β1 m + (1 − β1) g,  v ← β2 v + (1 − β2) g²
 *   θ ← θ − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
 * Defaults are Neural Cleanse's: lr 0.1, β = (0.5, 0.9), ε = 1e-8.
 */
export interface AdamOptions {
	lr?: number;
	beta1?: number;
	beta2?: number;
	eps?: number;
}

export class Adam {
	readonly lr: number;
	readonly beta1: number;
	readonly beta2: number;
	readonly eps: number;
	private readonly m: Float64Array;
	private readonly v: Float64Array;
	private t = 0;

	constructor(
		readonly size: number,
		opts: AdamOptions = {},
	) {
		this.lr = opts.lr ?? 0.1;
		this.beta1 = opts.beta1 ?? 0.5;
		this.beta2 = opts.beta2 ?? 0.9;
		this.eps = opts.eps ?? 1e-8;
		this.m = new Float64Array(size);
		this.v = new Float64Array(size);
	}

	/** Steps taken so far. */
	get steps(): number {
		return this.t;
	}

	/** One update of `params` in place from `grad` (same length as the optimiser). */
	step(params: Float32Array, grad: ArrayLike<number>): void {
		if (params.length !== this.size || grad.length !== this.size)
			throw new RangeError(
				`Adam: expected ${this.size} parameters and gradients, got ${params.length} and ${grad.length}`,
			);
		this.t += 1;
		const { beta1: b1, beta2: b2, eps } = this;
		const stepSize = this.lr / (1 - b1 ** this.t);
		const bc2Sqrt = Math.sqrt(1 - b2 ** this.t);
		const m = this.m;
		const v = this.v;
		for (let i = 0; i < params.length; i++) {
			const g = grad[i] as number;
			const mi = b1 * (m[i] as number) + (1 - b1) * g;
			const vi = b2 * (v[i] as number) + (1 - b2) * g * g;
			m[i] = mi;
			v[i] = vi;
			params[i] = (params[i] as number) - (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
		}
	}
}
