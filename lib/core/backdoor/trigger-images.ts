/**
 * The reversed triggers as pictures a reviewer can look at: for each class, the
 * mask (where the trigger sits) and the stamp mask·pattern (what it looks like),
 * scaled up so an 8×8 trigger is visible. Pure: returns bytes, the caller writes
 * them to a directory (CLI) or to S3 (batch job).
 */
import { encodePng } from "./png";

export interface TriggerImage {
	/** relative path, e.g. "triggers/class-3-mask.png" */
	name: string;
	bytes: Buffer;
}

export interface ReversedTrigger {
	cls: number;
	/** [1, H, W] or the input shape; values in [0, 1] */
	mask: Float32Array;
	/** input shape, values in [lo, hi] */
	pattern: Float32Array;
}

/** Smallest integer scale that makes the longer side at least this many pixels. */
const MIN_SIDE = 128;

/**
 * Images for image-shaped inputs ([C, H, W] with C = 1 or 3); other input shapes
 * (flat feature vectors) have no picture and give an empty list.
 */
export function triggerImages(
	triggers: readonly ReversedTrigger[],
	inputShape: readonly number[],
	lo: number,
	hi: number,
): TriggerImage[] {
	if (inputShape.length !== 3) return [];
	const [c, h, w] = inputShape as [number, number, number];
	if (c !== 1 && c !== 3) return [];
	const scale = Math.max(1, Math.ceil(MIN_SIDE / Math.max(h, w)));
	const range = hi > lo ? hi - lo : 1;
	const out: TriggerImage[] = [];
	for (const t of triggers) {
		const plane = h * w;
		const sharedMask = t.mask.length === plane;
		const stamp = new Float32Array(c * plane);
		for (let ch = 0; ch < c; ch++) {
			for (let i = 0; i < plane; i++) {
				const m = t.mask[sharedMask ? i : ch * plane + i] ?? 0;
				stamp[ch * plane + i] = (m * ((t.pattern[ch * plane + i] ?? lo) - lo)) / range;
			}
		}
		// a per-channel mask (non-image-like trigger parametrisation) is shown as its channel mean
		const maskPlane = sharedMask ? t.mask : channelMean(t.mask, c, plane);
		out.push({ name: `triggers/class-${t.cls}-mask.png`, bytes: encodePng(maskPlane, 1, h, w, scale) });
		out.push({ name: `triggers/class-${t.cls}-trigger.png`, bytes: encodePng(stamp, c, h, w, scale) });
	}
	return out;
}

function channelMean(mask: Float32Array, c: number, plane: number): Float32Array {
	const out = new Float32Array(plane);
	for (let ch = 0; ch < c; ch++)
		for (let i = 0; i < plane; i++) out[i] = (out[i] ?? 0) + (mask[ch * plane + i] ?? 0) / c;
	return out;
}
