import { defineConfig } from "vitest/config";

// `npm run test:long`: runs that take minutes (full detection-rate sets); `npm test` runs a sample of each
export default defineConfig({ test: { include: ["test/long/**/*.test.ts"], testTimeout: 300_000 } });
