/**
 * `ftguard report` pages in a real browser (Debian's chromium, driven by playwright-core): a page made from a real
 * backdoor scan renders its verdict and its images with no console error, loads nothing but itself, fits a 375 px
 * phone screen; a report whose file names and reasons are markup runs none of it. .ci/run installs chromium; without
 * it this test fails, it does not skip.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ftguard, quickBackdoorScan } from "../helpers/cli";

const CHROMIUM = "/usr/bin/chromium";
const XSS = `<img src=x onerror="window.__xss=1;alert(1)"></script><script>window.__xss=2;alert(2)</script>`;

const tmp = mkdtempSync(join(tmpdir(), "ftguard-report-browser-"));
let context: BrowserContext;

beforeAll(async () => {
	if (!existsSync(CHROMIUM))
		throw new Error(
			`chromium is not installed at ${CHROMIUM}: the HTML report's browser test needs it (apt-get install -y chromium; .ci/run installs it)`,
		);
	context = await chromium.launchPersistentContext(join(tmp, "profile"), {
		executablePath: CHROMIUM,
		headless: true,
		args: [
			"--headless",
			"--no-sandbox",
			"--disable-gpu",
			"--disable-quic",
			"--no-first-run",
			"--disable-background-networking",
			"--disable-component-update",
			"--disable-sync",
		],
	});
}, 60_000);
afterAll(async () => {
	await context?.close();
	rmSync(tmp, { recursive: true, force: true });
});

interface Visit {
	page: Page;
	/** every request the page made (its own URL first) */
	requests: string[];
	/** console errors, uncaught page errors and dialogs */
	problems: string[];
}

async function visit(file: string, width: number): Promise<Visit> {
	const page = await context.newPage();
	await page.setViewportSize({ width, height: 800 });
	const requests: string[] = [];
	const problems: string[] = [];
	page.on("request", (r) => requests.push(r.url()));
	page.on("console", (m) => {
		if (m.type() === "error" || m.type() === "warning") problems.push(`console ${m.type()}: ${m.text()}`);
	});
	page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
	page.on("dialog", async (d) => {
		problems.push(`dialog: ${d.message()}`);
		await d.dismiss();
	});
	await page.goto(pathToFileURL(file).href, { waitUntil: "load" });
	return { page, requests, problems };
}

async function noHorizontalScroll(page: Page): Promise<void> {
	// evaluated in the page (a string: this project's TypeScript has no DOM types)
	const { scroll, client } = (await page.evaluate(
		"({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth })",
	)) as { scroll: number; client: number };
	expect(scroll).toBeLessThanOrEqual(client);
}

describe("ftguard report in a browser", () => {
	it("a real backdoor scan's page: verdict, images loaded, no console error, no request, fits 375 px", async () => {
		const out = join(tmp, "scan");
		// the default scan (calibrated verdict) and Activation Clustering
		const scan = await quickBackdoorScan(out, ["--detectors", "nc,pairs,mm,strip,ac"]);
		expect(scan.code).toBe(1);
		const html = join(tmp, "scan.html");
		const r = await ftguard(["report", out, "-o", html]);
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		for (const width of [1280, 375]) {
			const { page, requests, problems } = await visit(html, width);
			await expect(page.getByRole("heading", { level: 1 }).textContent()).resolves.toBe("Backdoor scan");
			expect(await page.locator(".verdict .badge").getByText("SUSPECT (class 5)").isVisible()).toBe(true);
			const images = (await page.evaluate(
				"[...document.images].map((i) => ({ ok: i.complete, w: i.naturalWidth, alt: i.getAttribute('alt') }))",
			)) as Array<{ ok: boolean; w: number; alt: string | null }>;
			expect(images).toHaveLength(20); // 10 classes × mask and trigger
			for (const i of images) {
				expect(i.ok).toBe(true);
				expect(i.w).toBeGreaterThan(0);
				expect(i.alt).toMatch(/^Reversed trigger/);
			}
			expect(await page.locator("svg.chart").count()).toBeGreaterThanOrEqual(5);
			expect(problems).toEqual([]);
			expect(requests).toEqual([pathToFileURL(html).href]);
			if (width === 375) await noHorizontalScroll(page);
			await page.close();
		}
	}, 30_000);

	it("the calibrated verdict, pair and maximum margin sections: drawn, no console error, no request, fit 375 px", async () => {
		const out = join(tmp, "scan-calibrated");
		const scan = await quickBackdoorScan(out);
		expect(scan.code).toBe(1);
		// a calibrated section as the scan writes it (lib/core/backdoor/scan.ts), whatever the fitted calibrations hold
		const file = join(out, "report.json");
		const report = JSON.parse(readFileSync(file, "utf8"));
		const classes = report.model.num_classes as number;
		expect(report.detectors.neural_cleanse_pairs.targets).toHaveLength(classes);
		expect(report.detectors.max_margin.margins).toHaveLength(classes);
		report.detectors.neural_cleanse.rule = "calibrated";
		const stats = ["nc_area", "nc_relative", "pair_area", "pair_relative", "mm_relative"];
		report.detectors.calibrated = {
			false_alarm_rate: 0.01,
			calibration: { key: "nc+pairs+mm", statistics: stats, models: 120, classes: 1200, source: `fit ${XSS}` },
			per_class: Array.from({ length: classes }, (_, c) => ({
				cls: c,
				score: c === 5 ? 6.2 : c / 10 - 0.5,
				p_value: c === 5 ? 2.8e-10 : 0.4,
				z: Object.fromEntries(stats.map((s) => [s, c === 5 ? 4 : 0])),
				flagged: c === 5,
			})),
			flagged_classes: [5],
		};
		writeFileSync(file, JSON.stringify(report));
		const html = join(tmp, "scan-calibrated.html");
		const r = await ftguard(["report", out, "-o", html]);
		expect(r.stderr).toBe("");
		expect(r.code).toBe(0);
		for (const width of [1280, 375]) {
			const { page, requests, problems } = await visit(html, width);
			const h2 = await page.locator("h2").allTextContents();
			for (const title of ["Calibrated verdict", "Neural Cleanse per source–target pair", "Maximum margin (MM-BD)"])
				expect(h2).toContain(title);
			expect(h2.indexOf("Calibrated verdict")).toBeLessThan(h2.indexOf("Neural Cleanse"));
			for (const chart of [
				"Calibrated score per class",
				"Smallest pair trigger L1 per target",
				"Maximum margin per class",
			])
				expect(await page.locator("svg.chart title", { hasText: chart }).count()).toBe(1);
			expect(await page.getByText("a class either flags is suspect", { exact: false }).isVisible()).toBe(true);
			expect(await page.getByText(`fit ${XSS}`).isVisible()).toBe(true);
			expect(await page.evaluate("window.__xss")).toBeUndefined();
			expect(problems).toEqual([]);
			expect(requests).toEqual([pathToFileURL(html).href]);
			if (width === 375) await noHorizontalScroll(page);
			await page.close();
		}
	}, 60_000);

	it("markup in file names and reasons is shown as text and never runs", async () => {
		const files = join(tmp, "files.json");
		const hostile = [`${XSS}.pkl`, `weights/${XSS}/model.safetensors`];
		writeFileSync(
			files,
			JSON.stringify({
				ok: true,
				files: hostile.map((path, i) => ({
					path,
					format: "pickle",
					verdict: i === 0 ? "unsafe" : "safe",
					findings:
						i === 0 ? [{ id: "dangerous-global", severity: "critical", message: `imports ${XSS}`, location: XSS }] : [],
				})),
				summary: { files: 2, safe: 1, unsafe: 1, malformed: 0, unknown: 0, bytesRead: 10 },
			}),
		);
		const html = join(tmp, "files.html");
		expect((await ftguard(["report", files, "-o", html])).code).toBe(0);
		expect(readFileSync(html, "utf8")).not.toMatch(/<script/i);
		const { page, requests, problems } = await visit(html, 375);
		expect(await page.locator(".verdict .badge").getByText("UNSAFE").isVisible()).toBe(true);
		// the payload is on the page as the text it is
		expect(await page.getByText(`${XSS}.pkl`).first().isVisible()).toBe(true);
		expect(await page.evaluate("window.__xss")).toBeUndefined();
		expect(await page.locator("main img, main script").count()).toBe(0);
		expect(problems).toEqual([]);
		expect(requests).toEqual([pathToFileURL(html).href]);
		await noHorizontalScroll(page);
		await page.close();
	}, 20_000);
});
