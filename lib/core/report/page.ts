/**
 * The document around the sections: a strict Content-Security-Policy (nothing may load but data: images and the
 * page's one stylesheet, allowed by its hash; no script at all), viewport and language for phones and screen
 * readers, landmarks, the contents, and one stylesheet that keeps the page within a 375 px screen (wide tables
 * scroll in their own region, long digests and paths wrap).
 */
import { createHash } from "node:crypto";
import { type Html, html, trusted } from "./html";
import type { Ctx } from "./widgets";

const CSS = `
:root{color-scheme:light;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--pass:#116329;--pass-bg:#dafbe1;--fail:#a40e26;--fail-bg:#ffebe9;--warn:#7d4e00;--warn-bg:#fff8c5;--info:#0a3069;--info-bg:#ddf4ff}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:#fff}
header,main,footer,nav{max-width:64rem;margin:0 auto;padding:0 1rem}
header{padding-top:1rem;color:var(--muted)}
h1{font-size:1.6rem;line-height:1.25;margin:.5rem 0 1rem}
h2{font-size:1.3rem;margin:2rem 0 .5rem;padding-top:.5rem;border-top:1px solid var(--line)}
h3{font-size:1.1rem;margin:1.5rem 0 .5rem}
h4,h5,h6{font-size:1rem;margin:1.25rem 0 .5rem}
p,li,dd,td,th,figcaption,summary{overflow-wrap:anywhere}
code,.mono,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.875em;overflow-wrap:anywhere;word-break:break-word}
code{background:#f6f8fa;padding:0 .2em;border-radius:3px}
pre{white-space:pre-wrap;background:#f6f8fa;padding:.75rem;border-radius:6px}
.skip{position:absolute;left:-999px;top:0}
.skip:focus{left:1rem;background:#fff;padding:.5rem;z-index:1}
nav ul{display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;margin:0;list-style:none}
.verdict{border-left:6px solid var(--muted);padding:.75rem 1rem;background:#f6f8fa;border-radius:6px}
.verdict.pass{border-color:var(--pass)}
.verdict.fail{border-color:var(--fail)}
.verdict h2{border:0;margin-top:0;padding-top:0}
.verdict .badge{font-size:1.1rem}
.badge{display:inline-block;padding:0 .45em;border-radius:1em;font-weight:600;white-space:nowrap;border:1px solid currentColor}
.badge.pass{color:var(--pass);background:var(--pass-bg)}
.badge.fail{color:var(--fail);background:var(--fail-bg)}
.badge.warn{color:var(--warn);background:var(--warn-bg)}
.badge.info{color:var(--info);background:var(--info-bg)}
.more,.loc{color:var(--muted)}
.kv{margin:.75rem 0}
.kv>div{display:grid;grid-template-columns:minmax(8rem,14rem) minmax(0,1fr);gap:0 1rem;padding:.15rem 0;border-bottom:1px solid #eef1f4}
.kv dt{color:var(--muted)}
.kv dd{margin:0;min-width:0}
.scroll{overflow-x:auto;max-width:100%;margin:.75rem 0}
table{border-collapse:collapse;width:100%;font-size:.9rem}
caption{text-align:left;font-weight:600;padding:.25rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
thead th{border-bottom:2px solid var(--line);white-space:nowrap}
tbody th{min-width:6rem}
.num{text-align:right;font-variant-numeric:tabular-nums}
.findings>li{margin-bottom:.75rem}
figure{margin:1rem 0}
figure.chart{max-width:48rem}
svg.chart{width:100%;height:auto;display:block}
svg text{font:12px system-ui,sans-serif;fill:var(--fg)}
svg .axis-label{fill:var(--muted)}
svg .grid{stroke:#eaeef2}
svg .zero{stroke:var(--muted)}
svg .bar{fill:#6e7781}
svg .bar.flagged,svg .mark.flagged,svg .pt.flagged,svg .hist.trigger{fill:#cf222e}
svg .hist.clean{fill:#8c959f}
svg .hist.input,svg .pt{fill:#0969da}
svg .threshold line{stroke:#953800;stroke-width:2;stroke-dasharray:6 4}
svg .threshold text{fill:#953800;font-weight:600}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:1rem}
.gallery figure{margin:0;padding:.5rem;border:1px solid var(--line);border-radius:6px}
.gallery figure.flagged{border:2px solid var(--fail)}
.pair{display:flex;gap:.5rem;flex-wrap:wrap}
.pair img{width:128px;height:128px;max-width:100%;image-rendering:pixelated;border:1px solid var(--line);background:#000}
.noimg{display:inline-block;width:128px;height:128px;border:1px dashed var(--line);color:var(--muted);font-size:.8rem;padding:.5rem}
footer{margin:3rem auto 2rem;color:var(--muted);font-size:.875rem}
@media (max-width:40rem){.kv>div{grid-template-columns:minmax(0,1fr)}h1{font-size:1.35rem}}
@media print{nav,.skip{display:none}}
`;

const STYLE_HASH = createHash("sha256").update(CSS).digest("base64");

/** No fetch of any kind; the one stylesheet by hash; no base or form targets. */
export const CONTENT_SECURITY_POLICY = `default-src 'none'; img-src data:; style-src 'sha256-${STYLE_HASH}'; base-uri 'none'; form-action 'none'`;

export function page(ctx: Ctx, title: string, body: Html, footer: Html): string {
	const nav =
		ctx.toc.length > 0
			? html`<nav aria-label="Contents"><ul>${ctx.toc.map((t) => html`<li><a href="#${t.id}">${t.title}</a></li>`)}</ul></nav>`
			: html``;
	return html`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${CONTENT_SECURITY_POLICY}">
<meta name="referrer" content="no-referrer">
<title>${title}</title>
<style>${trusted(CSS)}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the report</a>
<header><p>ftguard scan report</p></header>
${nav}
<main id="main">
${body}
</main>
<footer>${footer}</footer>
</body>
</html>
`.value;
}
