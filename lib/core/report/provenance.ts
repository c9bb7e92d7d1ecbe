/**
 * A provenance record (issue 19: a signed in-toto statement per verdict), shown when the input carries a
 * `provenance` object: its fields as they are, bounded, and how a deployment system verifies it instead of trusting
 * a tag. Its format is not fixed yet, so nothing here reads a particular field.
 */
import { type Html, html } from "./html";
import { isObject, obj } from "./read";
import { type Ctx, freeForm, type Level, section } from "./widgets";

export function provenanceSection(ctx: Ctx, doc: unknown, level: Level): Html {
	const p = obj(doc)?.provenance;
	if (!isObject(p)) return html``;
	return section(
		ctx,
		level,
		"Provenance",
		html`<p>The signed record of what was scanned and what each check found. Verify it against the artefact's bytes rather than trusting the promotion tag:</p><pre><code>ftguard provenance verify &lt;record&gt; --artefact &lt;dir | s3 uri&gt; --public-key &lt;key.pem&gt;</code></pre>${freeForm(p)}`,
	);
}
