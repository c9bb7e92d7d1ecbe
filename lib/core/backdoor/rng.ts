/**
 * A small seeded PRNG for the detectors (xoshiro128**): uniforms, normals,
 * shuffles. Nothing in the backdoor scan uses Math.random, so a scan is
 * reproducible from its policy's seed.
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
