/**
 * The scan functions' code: each handler bundled by esbuild into a directory holding `index.mjs` and its map, once
 * per process.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, sep } from "node:path";
import { buildSync } from "esbuild";

const bundles = new Map<string, string>();

/**
 * Bundles handlers (ESM, minified, source maps, Node 22 target, every dependency included at the lockfile's
 * version): `handlers` maps a function name to its entry file; the result maps it to the bundle's directory. The
 * handlers not bundled yet in this process go through one esbuild build, which parses the modules they share once
 * and writes each bundle byte for byte as a build of that handler alone would. (NodejsFunction would bundle again
 * for every App, since CDK's asset cache is keyed by the output directory: seconds per function per synth in the
 * test suites.) The maps' sources are relative to the project root, so the asset hash is the same wherever the
 * bundle is written.
 */
export function bundleHandlers(
	handlers: ReadonlyMap<string, string>,
	projectRoot: string,
): ReadonlyMap<string, string> {
	const missing = [...handlers].filter(([, entry]) => !bundles.has(entry));
	if (missing.length > 0) {
		const outdir = join(projectRoot, ".lambda-bundles");
		const result = buildSync({
			entryPoints: missing.map(([name, entry]) => ({ in: entry, out: `${name}/index` })),
			absWorkingDir: projectRoot,
			bundle: true,
			platform: "node",
			format: "esm",
			target: "node22",
			mainFields: ["module", "main"],
			minify: true,
			sourcemap: "external",
			sourcesContent: false,
			legalComments: "none",
			outdir,
			outExtension: { ".js": ".mjs" },
			write: false,
			logLevel: "silent",
			banner: {
				js: "import { createRequire as __ftguardRequire } from 'node:module'; const require = __ftguardRequire(import.meta.url);",
			},
		});
		const dirs = new Map(missing.map(([name]) => [name, mkdtempSync(join(tmpdir(), `ftguard-${name}-`))]));
		for (const file of result.outputFiles) {
			const [name = "", ...rest] = relative(outdir, file.path).split(sep);
			const dir = dirs.get(name);
			if (!dir) throw new Error(`esbuild wrote ${file.path}, which belongs to no handler`);
			writeFileSync(join(dir, ...rest), file.contents);
		}
		// esbuild's external map is linked from index.mjs by a relative comment; Node loads it with --enable-source-maps.
		for (const [name, entry] of missing) bundles.set(entry, dirs.get(name) as string);
	}
	return new Map([...handlers].map(([name, entry]) => [name, bundles.get(entry) as string]));
}

/** {@link bundleHandlers} for one handler: the directory of its bundle. */
export function bundleHandler(entry: string, name: string, projectRoot: string): string {
	return bundleHandlers(new Map([[name, entry]]), projectRoot).get(name) as string;
}
