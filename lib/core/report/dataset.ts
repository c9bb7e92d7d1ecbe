/**
 * A dataset report (`ftguard dataset --json`, the dataset gate's ftguard-dataset-report.json): each finding with the
 * records it names and its evidence, where the flagged records are, the version's lineage. Evidence holds the
 * dataset's own text (triggers, injected outputs): hostile, shown escaped. The lineage's leaf prefixes (megabytes
 * of base64) are never shown.
 */
import { clip, type Html, html } from "./html";
import { arr, bounded, count, counts, fmt, isObject, LIMITS, num, obj, str, text } from "./read";
import { badge, type Ctx, code, freeForm, type Level, more, pairs, section, table } from "./widgets";

const SEVERITY: Record<string, "fail" | "warn" | "info"> = {
	critical: "fail",
	high: "fail",
	medium: "warn",
	low: "info",
};

export function datasetSection(ctx: Ctx, doc: unknown, level: Level): Html {
	const d = obj(doc);
	const findings = arr(d?.findings).filter(isObject);
	const shown = bounded(findings, LIMITS.items);
	const locations = obj(d?.locations);
	const lineage = obj(d?.lineage);
	const gate = obj(d?.dataset);
	const changes = obj(d?.changes);
	const flagged = counts(d?.flagged_records);
	const items = shown.shown.map((f) => {
		const sev = str(f.severity) ?? "";
		const recs = counts(f.records);
		return html`<li><p>${badge(SEVERITY[sev] ?? "info", sev || "finding")} <strong>${clip(str(f.id) ?? "", LIMITS.cell)}</strong>: ${clip(text(f.message), LIMITS.text)}</p><p class="loc">${recs.length} records: ${recs.slice(0, 30).join(", ")}${recs.length > 30 ? " …" : ""}</p>${isObject(f.evidence) ? html`<details><summary>evidence</summary>${freeForm(f.evidence)}</details>` : ""}</li>`;
	});
	const where = bounded(
		flagged.flatMap((r) => {
			const l = obj(locations?.[String(r)]);
			return l === undefined ? [] : [[r, str(l.file) ?? "", count(l.line)] as const];
		}),
		LIMITS.rows,
	);
	const files = bounded(arr(lineage?.files).filter(isObject), LIMITS.rows);
	return html`${section(
		ctx,
		level,
		"Dataset findings",
		html`${pairs([
			["records", count(d?.records)],
			["flagged records", flagged.length],
			["source", gate === undefined ? undefined : clip(`${text(gate.bucket)}/${text(gate.prefix)}`, LIMITS.text)],
			[
				"since the base version",
				changes === undefined
					? undefined
					: `${arr(changes.added).length} records added, ${arr(changes.removed).length} removed`,
			],
			[
				"scan time",
				num(obj(d?.timings)?.total_ms) === undefined
					? undefined
					: `${fmt((num(obj(d?.timings)?.total_ms) ?? 0) / 1000)} s`,
			],
		])}${
			findings.length === 0
				? html`<p>${badge("pass", "no findings")}</p>`
				: html`<ul class="findings">${items}</ul>${more(shown.more, "findings")}`
		}${
			where.shown.length === 0
				? ""
				: table(
						ctx,
						"Where the flagged records are",
						[{ label: "record", numeric: true }, { label: "file" }, { label: "line or row", numeric: true }],
						where.shown.map(([r, f, l]) => [r, code(f), l]),
						where.more,
						"records",
					)
		}`,
	)}${
		lineage === undefined
			? ""
			: section(
					ctx,
					level,
					"Dataset lineage",
					html`<p>The version's identity: a Merkle root over its records' canonical JSON (RFC 6962), and each file's SHA-256.</p>${pairs(
						[
							["Merkle root", code(str(lineage.merkle_root) ?? "")],
							["records", count(lineage.records)],
						],
					)}${table(
						ctx,
						"Dataset files",
						[
							{ label: "file" },
							{ label: "SHA-256" },
							{ label: "bytes", numeric: true },
							{ label: "records", numeric: true },
						],
						files.shown.map((f) => [
							code(str(f.path) ?? ""),
							code(str(f.sha256) ?? ""),
							count(f.bytes),
							count(f.records),
						]),
						files.more,
						"files",
					)}`,
				)
	}`;
}
