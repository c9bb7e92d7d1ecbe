/**
 * A backdoor report of a text classifier (lib/core/backdoor/text-scan.ts TextBackdoorReport): per label the inverted
 * trigger the token search found, its attack success against the thresholds, the candidates and the continuous
 * search's nearest tokens. Trigger text is the model's and hostile: shown as escaped text in code style.
 */
import { barChart } from "./charts";
import { type Html, html } from "./html";
import { arr, bool, bounded, count, counts, fmt, LIMITS, num, obj, pct, str, text } from "./read";
import { type Ctx, code, deeper, heading, type Level, list, more, section, table } from "./widgets";

const rate = (v: unknown, lower: unknown) => `${pct(num(v))} (≥ ${pct(num(lower))})`;

export function backdoorText(ctx: Ctx, report: unknown, level: Level): Html {
	const r = obj(report);
	const sub = deeper(level);
	const policy = obj(r?.policy);
	const asr = num(policy?.asrThreshold);
	const labels = arr(r?.labels).flatMap((l) => {
		const o = obj(l);
		const c = count(o?.label);
		return c === undefined || o === undefined ? [] : [{ label: c, o }];
	});
	const chartN = Math.min(labels.length, LIMITS.chartClasses);
	const chart =
		labels.length === 0
			? html``
			: barChart(ctx, {
					title: "Attack success of each label's best inverted trigger (lower confidence bound)",
					desc: `Per label, the one-sided lower bound of the share of held-out texts of other labels the trigger sends to it; a label is flagged (triangle) when it reaches ${pct(asr)} (dashed line) and the other tests hold.`,
					labels: labels.slice(0, chartN).map((l) => String(l.label)),
					values: labels.slice(0, chartN).map((l) => num(l.o.attack_success_lower) ?? 0),
					flagged: labels.slice(0, chartN).map((l) => bool(l.o.flagged) === true),
					lines: asr === undefined ? [] : [{ value: asr, label: `threshold ${pct(asr)}` }],
					yLabel: "attack success (lower bound)",
					xLabel: "label",
				});
	const rows = bounded(labels, LIMITS.rows);
	const labelsTable = table(
		ctx,
		"Inverted trigger per label",
		[
			{ label: "label", numeric: true },
			{ label: "trigger" },
			{ label: "tokens" },
			{ label: "position" },
			{ label: "from labels" },
			{ label: "held-out texts", numeric: true },
			{ label: "attack success (lower)", numeric: true },
			{ label: "diluted (lower)", numeric: true },
			{ label: "in own texts", numeric: true },
			{ label: "other sources sent", numeric: true },
			{ label: "flagged" },
		],
		rows.shown.map((l) => [
			l.label,
			code(str(l.o.trigger) ?? ""),
			code(
				arr(l.o.tokens)
					.slice(0, 16)
					.map((t) => text(t))
					.join(" · "),
			),
			str(l.o.position) ?? "",
			l.o.sources === null ? "all" : counts(l.o.sources).join(", "),
			count(l.o.held_out),
			rate(l.o.attack_success, l.o.attack_success_lower),
			rate(l.o.diluted_attack_success, l.o.diluted_attack_success_lower),
			pct(num(l.o.natural_rate)),
			// judged on source labels alone: how much of the other sources it sends (a source-specific one: little)
			l.o.off_source_attack_success == null ? "" : pct(num(l.o.off_source_attack_success)),
			bool(l.o.flagged) ? "flagged" : "no",
		]),
		rows.more,
		"labels",
	);
	// the flagged labels' other candidates and the continuous search: what a reviewer checks a finding with
	const detail = labels
		.filter((l) => bool(l.o.flagged) === true)
		.slice(0, 8)
		.map((l) => {
			const cands = bounded(arr(l.o.candidates), 10);
			const emb = obj(l.o.embedding);
			return section(
				ctx,
				sub,
				`Label ${l.label}: candidates`,
				html`${table(
					ctx,
					`Candidate triggers of label ${l.label}, most suspicious first`,
					[
						{ label: "trigger" },
						{ label: "origin" },
						{ label: "position" },
						{ label: "attack success (lower)", numeric: true },
						{ label: "diluted (lower)", numeric: true },
						{ label: "flagged" },
					],
					cands.shown.map((c) => {
						const o = obj(c);
						return [
							code(str(o?.trigger) ?? ""),
							str(o?.origin) ?? "",
							str(o?.position) ?? "",
							rate(o?.attack_success, o?.attack_success_lower),
							rate(o?.diluted_attack_success, o?.diluted_attack_success_lower),
							bool(o?.flagged) ? "flagged" : "no",
						];
					}),
					cands.more,
					"candidates",
				)}${emb === undefined ? "" : html`<p>Continuous search (reported, not judged on): loss ${fmt(num(emb.loss))}, attack success ${pct(num(emb.attack_success))}, nearest tokens ${code(arr(emb.nearest).slice(0, 16).map(text).join(" · "))}.</p>`}`,
			);
		});
	const limits = arr(r?.limits);
	return section(
		ctx,
		level,
		"Inverted triggers (text)",
		html`<p>For every label, a token-level search looks for the trigger that sends texts of other labels to it (lengths 1–${count(policy?.maxTriggerLength) ?? "?"}, found on half the reference texts, judged on the other half). Clean accuracy on the reference texts: ${pct(num(obj(r?.data)?.clean_accuracy))}.</p>${chart}${more(labels.length - chartN, "labels not drawn")}${labelsTable}${detail}${
			limits.length > 0 ? html`${heading(sub, "What this data cannot show")}${list(limits, "limits")}` : ""
		}`,
	);
}
