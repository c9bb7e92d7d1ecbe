/**
 * The reversed trigger images a backdoor scan writes (`triggers/class-<k>-{mask,trigger}.png`, lib/core/backdoor/
 * trigger-images.ts): which classes are worth showing when there are many, and the bytes accepted for embedding.
 */
import { arr, count, counts, isObject, LIMITS, num, obj } from "./read";

export type ImageMap = ReadonlyMap<string, Uint8Array>;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** PNG bytes (by signature) of at most the per-image bound: anything else is not embedded. */
export function isEmbeddablePng(bytes: Uint8Array): boolean {
	return (
		bytes.length > PNG_SIGNATURE.length &&
		bytes.length <= LIMITS.imageBytes &&
		PNG_SIGNATURE.every((b, i) => bytes[i] === b)
	);
}

export function triggerImageName(cls: number, which: "mask" | "trigger"): string {
	return `triggers/class-${cls}-${which}.png`;
}

/**
 * The classes whose images a page shows, most telling first: suspect classes, classes Neural Cleanse flagged (either
 * rule), then the smallest reversed triggers relative to the median; at most LIMITS.imageClasses.
 */
export function imageClasses(report: unknown): { classes: number[]; total: number } {
	const r = obj(report);
	const nc = obj(obj(r?.detectors)?.neural_cleanse);
	const l1 = arr(nc?.l1_norms);
	const total = Math.min(l1.length, count(obj(r?.model)?.num_classes) ?? l1.length);
	const inRange = (c: number) => c < total;
	const rel = arr(nc?.relative_l1);
	const bySize = Array.from({ length: total }, (_, c) => c).sort(
		(a, b) => (num(rel[a]) ?? num(l1[a]) ?? Infinity) - (num(rel[b]) ?? num(l1[b]) ?? Infinity) || a - b,
	);
	const order = [
		...counts(r?.suspect_classes),
		...counts(nc?.flagged_classes),
		...counts(nc?.flagged_classes_vanilla),
		...bySize,
	].filter(inRange);
	return { classes: [...new Set(order)].slice(0, LIMITS.imageClasses), total };
}

/** The image names a page of this backdoor report would embed: what a reader (disk, S3) needs to fetch. */
export function wantedImages(report: unknown): string[] {
	if (!isObject(report)) return [];
	return imageClasses(report).classes.flatMap((c) => [triggerImageName(c, "mask"), triggerImageName(c, "trigger")]);
}
