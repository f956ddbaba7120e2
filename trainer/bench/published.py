"""Published rows printed beside a bench's own: numbers from the GoT-R1 paper, never measured here.

Source: GoT-R1 (Duan et al., arXiv 2505.17022; ICLR 2026), Table 1 (T2I-CompBench),
its GenEval table and its reward ablation (Janus-Pro-1B rows, three columns),
as a public summary of the ICLR 2026 version reports them (the paper's own
tables could not be read where this was written: check them against the paper
before quoting). They were scored with the official
evaluators (UniDet, spaCy, 10 images per prompt for T2I-CompBench), so a row of
ours scored by this pack's stand-ins is comparable in kind, not to the digit
(docs/benchmarks.md). ``None``: the paper gives no number for that column.
"""

from __future__ import annotations

SOURCE = "GoT-R1 (arXiv 2505.17022, ICLR 2026 version) as published — not measured here"

T2I_COMPBENCH: dict[str, dict[str, float | None]] = {
    # model: color, shape, texture, spatial, non_spatial, complex
    "FLUX.1": dict(color=0.7407, shape=0.5718, texture=0.6922, spatial=0.2863, non_spatial=0.3127, complex=0.3703),
    "SD3": dict(color=0.8132, shape=0.5885, texture=0.7334, spatial=0.3200, non_spatial=0.3140, complex=0.3771),
    "Janus-Pro-7B": dict(color=0.6359, shape=0.3528, texture=0.4936, spatial=0.2061, non_spatial=0.3085,
                         complex=0.3559),
    "Janus-Pro-7B-GoT": dict(color=0.6551, shape=0.5008, texture=0.5836, spatial=0.2457, non_spatial=0.3113,
                             complex=0.3754),
    "GoT-R1-7B": dict(color=0.8139, shape=0.5549, texture=0.7339, spatial=0.3306, non_spatial=0.3169,
                      complex=0.3944),
    # the reward ablation's rows: colour, 2D-spatial and complex only
    "Janus-Pro-1B-GoT": dict(color=0.6336, shape=None, texture=None, spatial=0.2140, non_spatial=None,
                             complex=0.3490),
    "GoT-R1-1B": dict(color=0.7632, shape=None, texture=None, spatial=0.2674, non_spatial=None, complex=0.3749),
}

GENEVAL: dict[str, dict[str, float | None]] = {
    # model: overall and the six tasks
    "Janus-Pro-7B-GoT": dict(overall=0.64, single_object=0.99, two_object=0.69, counting=0.48, colors=0.85,
                             position=0.43, color_attr=0.43),
    "GoT-R1-7B": dict(overall=0.75, single_object=0.99, two_object=0.94, counting=0.50, colors=0.90, position=0.46,
                      color_attr=0.68),
}
