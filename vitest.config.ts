import { configDefaults, defineConfig } from "vitest/config";

const INFRA = "test/infra/**/*.test.ts";

export default defineConfig({
	test: {
		testTimeout: 30_000,
		hookTimeout: 60_000,
		projects: [
			// Unisolated: the infra test files of a worker share one module graph, so the FtguardStack they read
			// (sharedFtguard in test/infra/helpers/stack.ts), the Lambda bundles and CDK's template validator are built
			// once per worker instead of once per file.
			{ extends: true, test: { name: "infra", include: [INFRA], isolate: false } },
			{
				extends: true,
				test: {
					name: "main",
					include: ["test/**/*.test.ts"],
					exclude: [...configDefaults.exclude, INFRA, "test/long/**"],
				},
			},
		],
	},
});
