/**
 * A backdoor report of an image (or flat-input) classifier (lib/core/backdoor/scan.ts BackdoorReport): the calibrated
 * verdict when the scan used it (backdoor-calibrated.ts), Neural Cleanse's anomaly indices against the threshold and
 * the reversed triggers as images, Neural Cleanse per (source, target) pair, MM-BD's maximum margins, STRIP's
 * entropies, Activation Clustering's clusters.
 */
import { calibratedSection, maxMarginSection, pairsSection } from "./backdoor-calibrated";
import { barChart, histogram, scatter } from "./charts";
import { clip, type Html, html, pngDataUri } from "./html";
import { type ImageMap, imageClasses, isEmbeddablePng, triggerImageName } from "./images";
import { arr, bool, bounded, count, counts, fmt, LIMITS, num, nums, obj, pct, str } from "./read";
import { type Ctx, deeper, type Level, list, more, pairs, section, table } from "./widgets";

type Obj = Record<string, unknown> | undefined;

function neuralCleanse(ctx: Ctx, r: Obj, images: ImageMap | undefined, level: Level): Html {
	const nc = obj(obj(r?.detectors)?.neural_cleanse);
	if (nc === undefined) return html``;
	const policy = obj(obj(r?.policy)?.neuralCleanse);
	// the calibrated rule reports Neural Cleanse's own flags by the ftguard rule; the calibrated section decides
	const calibrated = str(nc.rule) === "calibrated";
	const rule = str(nc.rule) === "vanilla" ? "vanilla" : "ftguard";
	const l1 = nums(nc.l1_norms);
	const n = l1.length;
	const index = arr(rule === "vanilla" ? nc.anomaly_indices : nc.log_anomaly_indices);
	const mad = arr(nc.anomaly_indices);
	const logIndex = arr(nc.log_anomaly_indices);
	const rel = arr(nc.relative_l1);
	const success = arr(nc.attack_success);
	const flagged = new Set(counts(nc.flagged_classes));
	const vanilla = new Set(counts(nc.flagged_classes_vanilla));
	const threshold = num(policy?.anomalyThreshold) ?? 2;
	const maxRel = num(policy?.maxRelativeL1) ?? 0.5;
	const strip = new Map(
		arr(obj(obj(r?.detectors)?.strip)?.reversed_triggers).flatMap((t) => {
			const c = count(obj(t)?.cls);
			return c === undefined ? [] : [[c, obj(t)] as const];
		}),
	);
	const chartN = Math.min(n, LIMITS.chartClasses);
	const classes = Array.from({ length: chartN }, (_, c) => c);
	const indexName = rule === "vanilla" ? "anomaly index (MAD)" : "log-scale anomaly index";
	const charts = html`${barChart(ctx, {
		title: `Neural Cleanse ${indexName} per class`,
		desc: `Bars are each class's ${indexName}; the dashed line is the threshold ${fmt(threshold)}. Flagged classes are marked with a triangle: ${[...flagged].join(", ") || "none"}.`,
		labels: classes.map(String),
		values: classes.map((c) => (index[c] === null ? null : (num(index[c]) ?? 0))),
		flagged: classes.map((c) => flagged.has(c)),
		lines: [{ value: threshold, label: `threshold ${fmt(threshold)}` }],
		yLabel: indexName,
		xLabel: "class",
	})}${
		rule === "ftguard"
			? barChart(ctx, {
					title: "Reversed trigger size relative to the median class",
					desc: `Bars are each class's trigger L1 norm divided by the median; a class is flagged only at or below ${fmt(maxRel)} (dashed line) with an index above the threshold.`,
					labels: classes.map(String),
					values: classes.map((c) => num(rel[c]) ?? 0),
					flagged: classes.map((c) => flagged.has(c)),
					lines: [{ value: maxRel, label: `at most ${fmt(maxRel)}× median` }],
					yLabel: "L1 / median L1",
					xLabel: "class",
				})
			: ""
	}${more(n - chartN, "classes not drawn (the table lists them)")}`;
	const order = imageClasses(r).classes;
	const rows = bounded(
		[...new Set([...order, ...Array.from({ length: n }, (_, c) => c)])].sort((a, b) => a - b),
		LIMITS.rows,
	);
	const flagWord = (c: number) => (flagged.has(c) ? "flagged" : vanilla.has(c) ? "vanilla rule only" : "no");
	const tableHtml = table(
		ctx,
		"Neural Cleanse per class",
		[
			{ label: "class", numeric: true },
			{ label: "trigger L1", numeric: true },
			{ label: "× median", numeric: true },
			{ label: "log index", numeric: true },
			{ label: "MAD index", numeric: true },
			{ label: "attack success", numeric: true },
			{ label: "STRIP below boundary", numeric: true },
			{ label: "flagged" },
		],
		rows.shown.map((c) => [
			c,
			fmt(l1[c]),
			fmt(num(rel[c])),
			fmt(num(logIndex[c])),
			mad[c] === null ? "∞" : fmt(num(mad[c])),
			pct(num(success[c])),
			pct(num(strip.get(c)?.fraction_below)),
			flagWord(c),
		]),
		rows.more,
		"classes",
	);
	return section(
		ctx,
		level,
		"Neural Cleanse",
		html`<p>For every class, the smallest trigger that sends clean inputs to it was reverse-engineered (${count(nc.steps) ?? "?"} steps × ${count(nc.restarts) ?? "?"} restarts, mask of ${count(nc.mask_size) ?? "?"} values). ${calibrated ? html`Verdict rule <strong>calibrated</strong>: the flags below are those of the ftguard rule (log-scale anomaly index above ${fmt(threshold)} and L1 at most ${fmt(maxRel)}× the median), <strong>judged beside the calibrated p-values</strong>: a class either flags is suspect (outside the calibration population this rule alone decides), and these trigger sizes are among the calibrated statistics.` : html`A class whose trigger is anomalously small is suspect: rule <strong>${rule}</strong>${rule === "ftguard" ? html` — log-scale anomaly index above ${fmt(threshold)} and L1 at most ${fmt(maxRel)}× the median` : html` — anomaly index above ${fmt(threshold)} and L1 below the median`}.`} ${calibrated ? "Flagged by the ftguard rule" : "Flagged"}: <strong>${flagged.size > 0 ? [...flagged].join(", ") : "none"}</strong>; largest index ${fmt(num(nc.max_anomaly_index))}.</p>${charts}${tableHtml}${triggerGallery(ctx, r, images, deeper(level), flagWord)}`,
	);
}

function triggerGallery(
	ctx: Ctx,
	r: Obj,
	images: ImageMap | undefined,
	level: Level,
	flagWord: (c: number) => string,
): Html {
	const { classes, total } = imageClasses(r);
	const nc = obj(obj(r?.detectors)?.neural_cleanse);
	const l1 = arr(nc?.l1_norms);
	const rel = arr(nc?.relative_l1);
	const img = (c: number, which: "mask" | "trigger", alt: string): Html => {
		const bytes = images?.get(triggerImageName(c, which));
		if (bytes === undefined || !isEmbeddablePng(bytes) || bytes.length > ctx.imageBytesLeft)
			return html`<span class="noimg">no ${which} image</span>`;
		ctx.imageBytesLeft -= bytes.length;
		return html`<img src="${pngDataUri(bytes)}" alt="${alt}" width="128" height="128">`;
	};
	const any = classes.some(
		(c) => images?.has(triggerImageName(c, "trigger")) || images?.has(triggerImageName(c, "mask")),
	);
	const figures = classes.map((c) => {
		const flag = flagWord(c);
		const status = flag === "flagged" ? "flagged" : flag === "no" ? "not flagged" : flag;
		return html`<figure class="trigger${flag === "flagged" ? " flagged" : ""}"><div class="pair">${img(c, "mask", `Reversed trigger mask of class ${c} (${status})`)}${img(c, "trigger", `Reversed trigger of class ${c} as stamped on an input (${status})`)}</div><figcaption>class ${c}${flag === "flagged" ? html` <strong>▲ flagged</strong>` : ""} · L1 ${fmt(num(l1[c]))} (${fmt(num(rel[c]))}× median)</figcaption></figure>`;
	});
	return section(
		ctx,
		level,
		"Reversed triggers",
		any
			? html`<p>Per class: where the trigger sits (mask, white = stamped) and what it looks like (mask × pattern). Suspect and flagged classes first, then the smallest triggers.</p><div class="gallery">${figures}</div>${more(total - classes.length, "classes without images on this page")}`
			: html`<p>No trigger images: the input is not an image (C×H×W with 1 or 3 channels), or the PNGs (triggers/class-&lt;k&gt;-mask.png, -trigger.png) were not beside the report.</p>`,
	);
}

function stripSection(ctx: Ctx, r: Obj, level: Level): Html {
	const s = obj(obj(r?.detectors)?.strip);
	if (s === undefined) return html``;
	const boundary = num(s.boundary);
	const clean = obj(s.clean_entropy);
	const triggers = arr(s.reversed_triggers).flatMap((t) => {
		const o = obj(t);
		const c = count(o?.cls);
		return c === undefined || o === undefined
			? []
			: [{ cls: c, below: num(o.fraction_below), mean: num(o.mean_entropy) }];
	});
	const suspects = new Set(counts(r?.suspect_classes));
	const h = obj(s.histogram);
	const max = num(h?.max);
	const cleanCounts = nums(h?.clean).slice(0, 1000);
	const lines = boundary === undefined ? [] : [{ value: boundary, label: `boundary ${fmt(boundary)}` }];
	let hist = html``;
	if (max !== undefined && max > 0 && cleanCounts.length > 0) {
		const byClass = new Map(
			arr(h?.reversed_triggers).flatMap((t) => {
				const c = count(obj(t)?.cls);
				return c === undefined ? [] : [[c, nums(obj(t)?.counts).slice(0, 1000)] as const];
			}),
		);
		// the suspect classes' triggers, else the one STRIP finds most input-agnostic: what a reader compares to clean
		const lowest = [...triggers].sort((a, b) => (a.mean ?? Infinity) - (b.mean ?? Infinity))[0]?.cls;
		const shown = [...suspects].filter((c) => byClass.has(c)).slice(0, 2);
		if (shown.length === 0 && lowest !== undefined && byClass.has(lowest)) shown.push(lowest);
		hist = histogram(ctx, {
			title: "STRIP entropy of clean inputs and of inputs stamped with reversed triggers",
			desc: `Share of inputs per entropy bin (bits). Inputs whose superimposed copies have entropy below the boundary ${fmt(boundary)} are treated as carrying a trigger. Series: clean held-out inputs${shown.map((c) => `, stamped with class ${c}'s trigger`).join("")}.`,
			lo: 0,
			hi: max,
			series: [
				{ name: "clean inputs", counts: cleanCounts, kind: "clean" },
				...shown.map((c) => ({ name: `class ${c} trigger`, counts: byClass.get(c) ?? [], kind: "trigger" as const })),
			],
			lines,
			xLabel: "entropy (bits)",
		});
	}
	const chartN = Math.min(triggers.length, LIMITS.chartClasses);
	const meanChart =
		triggers.length === 0
			? html``
			: barChart(ctx, {
					title: "STRIP mean entropy of inputs stamped with each class's reversed trigger",
					desc: `A trigger that works on any input keeps the prediction under superimposition, so its mean entropy falls below the boundary ${fmt(boundary)} (dashed line). Classes below it are marked.`,
					labels: triggers.slice(0, chartN).map((t) => String(t.cls)),
					values: triggers.slice(0, chartN).map((t) => t.mean ?? 0),
					flagged: triggers.slice(0, chartN).map((t) => boundary !== undefined && (t.mean ?? Infinity) < boundary),
					lines: [
						...lines,
						...(num(clean?.mean) === undefined
							? []
							: [{ value: num(clean?.mean) ?? 0, label: `clean mean ${fmt(num(clean?.mean))}` }]),
					],
					yLabel: "mean entropy (bits)",
					xLabel: "class",
				});
	const inputs = obj(s.inputs);
	let inputsHtml = html``;
	if (inputs !== undefined) {
		const entropy = nums(inputs.entropy);
		const flagged = counts(inputs.flagged);
		const top = Math.max(max ?? 0, ...entropy.slice(0, 100_000), 0.1);
		const bins = new Array<number>(20).fill(0);
		for (const e of entropy.slice(0, 100_000)) {
			const b = Math.min(19, Math.max(0, Math.floor((e / top) * 20)));
			bins[b] = (bins[b] ?? 0) + 1;
		}
		inputsHtml = html`<p>Inputs checked (--inputs): <strong>${flagged.length}</strong> of ${count(inputs.count) ?? entropy.length} below the boundary (likely carrying a trigger).</p>${entropy.length > 0 ? histogram(ctx, { title: "STRIP entropy of the inputs checked", desc: `Share of the ${entropy.length} inputs per entropy bin; the boundary is ${fmt(boundary)}.`, lo: 0, hi: top, series: [{ name: "inputs checked", counts: bins, kind: "input" }], lines, xLabel: "entropy (bits)" }) : ""}${flagged.length > 0 ? html`<p>Below the boundary (0-based input indices):</p>${list(flagged, "inputs")}` : ""}`;
	}
	return section(
		ctx,
		level,
		"STRIP",
		html`<p>Clean inputs are superimposed on each input ${count(s.superimpositions) ?? "?"} times; a low entropy of the predictions means the input carries a trigger that overrides any content. The boundary is the clean entropies' ${pct(num(s.frr))} quantile (false rejection rate).</p>${pairs(
			[
				["boundary", fmt(boundary)],
				[
					"clean entropy",
					clean === undefined
						? undefined
						: `mean ${fmt(num(clean.mean))}, sd ${fmt(num(clean.std))}, range ${fmt(num(clean.min))}–${fmt(num(clean.max))}`,
				],
			],
		)}${hist}${meanChart}${more(triggers.length - chartN, "classes not drawn")}${inputsHtml}`,
	);
}

function activationClustering(ctx: Ctx, r: Obj, level: Level): Html {
	const ac = obj(obj(r?.detectors)?.activation_clustering);
	if (ac === undefined) return html``;
	const policy = obj(obj(r?.policy)?.activationClustering);
	const minSil = num(policy?.minSilhouette);
	const maxMin = num(policy?.maxMinorityFraction);
	const per = arr(ac.per_class).flatMap((p) => {
		const o = obj(p);
		const c = count(o?.cls);
		return c === undefined || o === undefined ? [] : [{ cls: c, o }];
	});
	const decides = bool(ac.decides) === true;
	const shown = per.slice(0, LIMITS.chartClasses);
	const sils = shown.map((p) => num(p.o.silhouette) ?? 0);
	const chart =
		shown.length === 0
			? html``
			: scatter(ctx, {
					title: "Activation Clustering: each class split in two clusters",
					desc: `Per class, the silhouette of the two-cluster split (x) and the share of the smaller cluster (y). A class is flagged (triangle) when the split is clean (silhouette at least ${fmt(minSil)}) and the smaller cluster small (at most ${fmt(maxMin)}).`,
					points: shown.map((p) => ({
						x: num(p.o.silhouette) ?? 0,
						y: num(p.o.minority_fraction) ?? 0,
						label: String(p.cls),
						flagged: bool(p.o.flagged) === true,
					})),
					xLabel: "silhouette",
					yLabel: "minority fraction",
					...(minSil === undefined ? {} : { xLine: { value: minSil, label: `silhouette ${fmt(minSil)}` } }),
					...(maxMin === undefined ? {} : { yLine: { value: maxMin, label: `minority ${fmt(maxMin)}` } }),
					xRange: [Math.min(0, ...sils), 1],
					yRange: [0, 0.5],
				});
	const rows = bounded(per, LIMITS.rows);
	return section(
		ctx,
		level,
		"Activation Clustering",
		html`<p>${str(ac.data_kind) === "training" ? "Training-set samples" : "Reference samples"}: the penultimate-layer activations of each class are split in two; poisoned samples form a separate, smaller cluster. ${decides ? html`This scan lets it <strong>decide</strong>.` : html`<strong>Reported only</strong>: it decides only on training-set samples when the policy says so.`} Flagged classes: <strong>${counts(ac.flagged_classes).join(", ") || "none"}</strong>.</p>${chart}${table(
			ctx,
			"Activation Clustering per class",
			[
				{ label: "class", numeric: true },
				{ label: "samples", numeric: true },
				{ label: "minority fraction", numeric: true },
				{ label: "silhouette", numeric: true },
				{ label: "flagged" },
				{ label: "minority samples (indices)" },
			],
			rows.shown.map((p) => {
				const idx = counts(p.o.minority_indices);
				return [
					p.cls,
					count(p.o.n),
					fmt(num(p.o.minority_fraction)),
					fmt(num(p.o.silhouette)),
					bool(p.o.flagged) ? "flagged" : "no",
					clip(`${idx.slice(0, 20).join(", ")}${idx.length > 20 ? ` … (${idx.length})` : ""}`, LIMITS.cell),
				];
			}),
			rows.more,
			"classes",
		)}`,
	);
}

/** Every section of an image classifier's backdoor report, headings at `level`. */
export function backdoorImage(ctx: Ctx, report: unknown, images: ImageMap | undefined, level: Level): Html {
	const r = obj(report);
	return html`${calibratedSection(ctx, r, level)}${neuralCleanse(ctx, r, images, level)}${pairsSection(ctx, r, level)}${maxMarginSection(ctx, r, level)}${stripSection(ctx, r, level)}${activationClustering(ctx, r, level)}`;
}
