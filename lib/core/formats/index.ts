/**
 * The scanner registry: every format scanner, in detection order (most specific
 * magic first), plus the fail-closed fallbacks the engine uses for unclaimed
 * archives and pickle-named files. One scanner per file; add new ones here.
 */
import type { ScanOptions } from "./scan";
import type { Scanner } from "./types";

export const SCANNERS: readonly Scanner[] = [];

export function defaultScanOptions(): Pick<ScanOptions, "scanners" | "archiveFallback" | "pickleFallback"> {
	return { scanners: SCANNERS };
}
