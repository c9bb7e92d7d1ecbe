/**
 * The calibrated verdict's table (calibration.ts): the clean nulls of its statistics, fitted on the clean models of
 * the fit split of test/fixtures/backdoor-wide with the search it names. Written by
 * `npm run calibrate:backdoor -- --fit --write` from scan-results.json; test/unit/backdoor/calibration.test.ts
 * checks it is what that file gives. Do not edit by hand.
 */
import type { Calibration } from "./calibration";

export const CALIBRATIONS: Calibration[] = [
	{
		families: [
			{
				name: "neural_cleanse",
				statistics: ["nc_area", "nc_relative"],
			},
			{
				name: "pairs",
				statistics: ["pair_area", "pair_relative"],
			},
		],
		nulls: {
			nc_area: {
				loc: 2.4797069828622025,
				scale: 0.3332459509521439,
			},
			nc_relative: {
				loc: 0,
				scale: 0.20969581677789073,
			},
			pair_area: {
				loc: 3.0235813279647097,
				scale: 0.29255273517365316,
			},
			pair_relative: {
				loc: 0.34357821190478866,
				scale: 0.24856307888997164,
			},
		},
		scores: {
			neural_cleanse: {
				loc: 0.10932341984899395,
				scale: 0.9509160962631618,
			},
			pairs: {
				loc: 0.04140285750957831,
				scale: 0.9650612772099774,
			},
		},
		fitted: {
			models: 14,
			classes: 90,
			source: "test/fixtures/backdoor-wide (fit split, clean)",
			search: {
				nc: {
					steps: 100,
					restarts: 1,
					batch: 32,
				},
				pairs: {
					steps: 60,
					restarts: 1,
					maxPairs: 400,
				},
				mm: {
					steps: 300,
					restarts: 8,
				},
			},
			maskSizes: [256],
		},
	},
	{
		families: [
			{
				name: "neural_cleanse",
				statistics: ["nc_relative"],
			},
			{
				name: "pairs",
				statistics: ["pair_relative"],
			},
		],
		nulls: {
			nc_relative: {
				loc: 0,
				scale: 0.20969581677789073,
			},
			pair_relative: {
				loc: 0.34357821190478866,
				scale: 0.24856307888997164,
			},
		},
		scores: {
			neural_cleanse: {
				loc: 0,
				scale: 1,
			},
			pairs: {
				loc: -1.1188966420050406e-16,
				scale: 1,
			},
		},
		fitted: {
			models: 14,
			classes: 90,
			source: "test/fixtures/backdoor-wide (fit split, clean)",
			search: {
				nc: {
					steps: 100,
					restarts: 1,
					batch: 32,
				},
				pairs: {
					steps: 60,
					restarts: 1,
					maxPairs: 400,
				},
				mm: {
					steps: 300,
					restarts: 8,
				},
			},
			maskSizes: [256],
		},
	},
];
