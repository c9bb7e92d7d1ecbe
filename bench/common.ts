/** What the benchmarks share: medians, bundling a benchmark into its own measured child, and whether a bundle is older than its sources. */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export function median(xs: number[]): number {
	const s = [...xs].sort((a, b) => a - b);
	const m = s.length >> 1;
	return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Bundles the benchmark file itself with esbuild, so the measured child process
 * runs ftguard's code as a deployment would: no TypeScript loader in its time or RSS.
 */
export async function bundleSelf(moduleUrl: string, outfile: string): Promise<void> {
	const { build } = await import("esbuild");
	await build({
		entryPoints: [fileURLToPath(moduleUrl)],
		outfile,
		bundle: true,
		platform: "node",
		format: "esm",
		target: "node20",
		external: ["esbuild"],
		logLevel: "warning",
		banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
	});
}

/** The newest modification time of the .ts files under `dir` (is a built bundle older than its sources?). */
export function newestTs(dir: string): number {
	let newest = 0;
	for (const e of readdirSync(dir, { withFileTypes: true })) {
		const p = join(dir, e.name);
		if (e.isDirectory()) newest = Math.max(newest, newestTs(p));
		else if (e.name.endsWith(".ts")) newest = Math.max(newest, statSync(p).mtimeMs);
	}
	return newest;
}
