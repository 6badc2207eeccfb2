"""``sad eval``: measure policies in environments (rollouts) and against their teacher (fidelity).

Small modules, each named for what it holds:

- :mod:`sadcli.eval.stats` — Wilson intervals, exact McNemar tests, mean ± sd (scipy);
- :mod:`sadcli.eval.text` — action normalization, ROUGE-L (rouge-score), CoT match;
- :mod:`sadcli.eval.termination` — why an episode ended;
- :mod:`sadcli.eval.prompting` — the prompt format a distilled student was trained on;
- :mod:`sadcli.eval.policies` — ``--model`` specs to policies;
- :mod:`sadcli.eval.rollouts` — episodes in environments, incremental and resumable;
- :mod:`sadcli.eval.fidelity` — teacher-forced metrics on held-out segmented trajectories;
- :mod:`sadcli.eval.summary` — per model / environment / task type aggregates;
- :mod:`sadcli.eval.report` — Rich tables, Markdown, JSON report, plot.

Heavy libraries (torch, transformers, scipy, matplotlib) are imported inside functions.
"""
