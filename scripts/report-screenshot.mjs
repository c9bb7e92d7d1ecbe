// Regenerates docs/report-screenshot.png: the HTML report the local pipeline demo (`npm start`) writes beside the
// verdict of its `backdoor` case, rendered by Debian's chromium through playwright-core.
//
//   node scripts/report-screenshot.mjs            (needs /usr/bin/chromium; about a minute)
//
// The demo runs with --data-dir so that its report bucket stays on disk after it exits; s3rver keeps an object's
// bytes in `<data dir>/<bucket>/<key>._S3rver_object`.
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const OUT = "docs/report-screenshot.png";
const CASE = "demo/backdoor/model.onnx";
/** Above this the page is drawn at a smaller scale (the docs keep the screenshot small). */
const MAX_BYTES = 300 * 1024;

const data = mkdtempSync(join(tmpdir(), "ftguard-screenshot-"));
try {
	const demo = spawnSync(
		process.execPath,
		["bin/ftguard.mjs", "pipeline", "--demo", "--once", "--port", "0", "--data-dir", data],
		{ stdio: ["ignore", "ignore", "pipe"], encoding: "utf8" },
	);
	if (demo.status !== 0) throw new Error(`the demo exited ${demo.status}:\n${demo.stderr}`);
	const scans = join(data, "reports/scans");
	const page = readdirSync(scans)
		.map((id) => join(scans, id, "report.html._S3rver_object"))
		.find((f) => {
			try {
				return /<title>[^<]*<\/title>/.exec(readFileSync(f, "utf8"))?.[0].includes(CASE);
			} catch {
				return false;
			}
		});
	if (page === undefined) throw new Error(`no report.html for ${CASE} under ${scans}`);
	const html = join(data, "report.html");
	copyFileSync(page, html);
	const browser = await chromium.launch({
		executablePath: "/usr/bin/chromium",
		args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
	});
	try {
		for (const scale of [1, 0.85, 0.75, 0.65]) {
			const tab = await browser.newPage({ viewport: { width: 1000, height: 1200 }, deviceScaleFactor: scale });
			await tab.goto(pathToFileURL(html).href, { waitUntil: "load" });
			await tab.screenshot({ path: OUT, fullPage: true });
			await tab.close();
			if (statSync(OUT).size <= MAX_BYTES) break;
		}
	} finally {
		await browser.close();
	}
	console.log(`wrote ${OUT} (${Math.round(statSync(OUT).size / 1024)} KiB) from ${CASE}'s report.html`);
} finally {
	rmSync(data, { recursive: true, force: true });
}
