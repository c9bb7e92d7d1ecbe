/** What the benchmarks share: medians, and bundling a benchmark into its own measured child. */
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
