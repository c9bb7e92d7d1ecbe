import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FtguardError } from "../core/errors";

/**
 * The ftguard package root (cdk.json, lambdas/, batch-jobs/, examples/): the nearest directory above `from` whose
 * package.json is ftguard's — from this module's location by default, which works from the sources and from any
 * bundle that contains it. Its own module (no other imports) so the CLI can use it without loading the pipeline.
 */
export function repositoryRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
	let dir = from;
	for (;;) {
		try {
			const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
			if (pkg.name === "ftguard") return dir;
		} catch {
			// not here
		}
		const parent = dirname(dir);
		if (parent === dir) throw new FtguardError("IO_ERROR", `no ftguard package.json above ${from}`);
		dir = parent;
	}
}
