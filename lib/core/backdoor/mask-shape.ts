/**
 * How concentrated a reversed trigger's mask is: the share of its mass inside its densest window of 3/8 of the
 * image's height and width (6×6 on 16×16). A backdoor trigger is one localised thing — a patch, a sticker, a block —
 * whatever its size, while a clean class's smallest trigger is spread along the strokes that tell it from the others.
 * So this sees a large trigger that is no smaller than a clean class's natural one (docs/backdoor.md).
 */

/** The window's side for an image side (3/8 of it, at least 1). */
export const windowSide = (side: number) => Math.max(1, Math.round((side * 3) / 8));

/** Densest window's share of the mask's mass, in [0, 1]; 1 for a mask with no mass (all of nothing is in one place). */
export function maskConcentration(mask: ArrayLike<number>, h: number, w: number): number {
	if (!(h > 0 && w > 0) || mask.length !== h * w)
		throw new RangeError(`mask of ${mask.length} values is not ${h}×${w}`);
	// integral image: S[(i)(w+1)+j] = sum of mask rows < i, columns < j
	const W1 = w + 1;
	const S = new Float64Array((h + 1) * W1);
	for (let i = 0; i < h; i++) {
		let row = 0;
		for (let j = 0; j < w; j++) {
			row += Math.max(0, mask[i * w + j] as number);
			S[(i + 1) * W1 + j + 1] = (S[i * W1 + j + 1] as number) + row;
		}
	}
	const total = S[h * W1 + w] as number;
	if (!(total > 0)) return 1;
	const kh = Math.min(h, windowSide(h));
	const kw = Math.min(w, windowSide(w));
	let best = 0;
	for (let i = 0; i + kh <= h; i++)
		for (let j = 0; j + kw <= w; j++) {
			const s =
				(S[(i + kh) * W1 + j + kw] as number) -
				(S[i * W1 + j + kw] as number) -
				(S[(i + kh) * W1 + j] as number) +
				(S[i * W1 + j] as number);
			if (s > best) best = s;
		}
	return Math.min(1, best / total);
}
