// A fresh clone must install with nothing but the npm registry: onnxruntime-node's install
// script downloads its CUDA provider from another host unless told to skip it. These tests
// ask the install script's own decision function what it would do under this project's npm
// configuration, with no variable a newcomer would not set.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");
const require = createRequire(join(root, "package.json"));

/** The environment a lifecycle script sees when `npm ci` runs in this checkout, minus the variables it inherits. */
function npmScriptEnv(): Record<string, string> {
	const env = { ...process.env };
	for (const k of Object.keys(env)) if (/^(npm_|ONNXRUNTIME_NODE_INSTALL)/i.test(k)) delete env[k];
	const out = execFileSync("npm", ["run", "--silent", "env"], { cwd: root, env, encoding: "utf8" });
	const vars: Record<string, string> = {};
	for (const line of out.split("\n")) {
		const eq = line.indexOf("=");
		if (eq > 0) vars[line.slice(0, eq)] = line.slice(eq + 1);
	}
	return vars;
}

describe("a fresh clone's npm ci", () => {
	it("has onnxruntime-node skip its download under this project's npm configuration (npm 10 and 11)", () => {
		const env = npmScriptEnv();
		expect(env.npm_config_onnxruntime_node_install).toBe("skip");
		// The package's own parser, run as its install script would be.
		const utils = require.resolve("onnxruntime-node/script/install-utils.js");
		const decision = execFileSync(
			process.execPath,
			["-e", `process.stdout.write(JSON.stringify(require(${JSON.stringify(utils)}).parseInstallFlag() ?? null))`],
			{ env: { PATH: process.env.PATH ?? "", ...env }, encoding: "utf8" },
		);
		expect(JSON.parse(decision)).toBe(false);
	});

	it("denies onnxruntime-node's install script where npm gates install scripts (allowScripts, npm ≥ 11.19)", () => {
		const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
		expect(pkg.allowScripts?.["onnxruntime-node"]).toBe(false);
	});

	it("is what CI runs: .ci/run sets no install variable", () => {
		const ci = readFileSync(join(root, ".ci", "run"), "utf8");
		expect(ci).not.toMatch(/ONNXRUNTIME_NODE_INSTALL/);
		expect(ci).toMatch(/^npm ci\b/m);
	});
});
