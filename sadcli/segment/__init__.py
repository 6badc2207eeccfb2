"""Rule-based segmentation of agent trajectories into prompt / reason / act / obs spans (paper §3.2).

Modules: ``core`` (format detection, :func:`segment_record`), ``steps`` (the one set of rules that turns
parsed parts into steps), ``linearize`` (steps -> text + spans), one parser per format family
(``react_text``, ``messages``, ``alfworld``, ``tags``, ``template``), ``stats`` and ``preview`` (Rich).
"""

from sadcli.segment.core import FORMATS, detect_format, segment_record
from sadcli.segment.linearize import MARKERS, linearize
from sadcli.segment.template import load_template

__all__ = ["FORMATS", "MARKERS", "detect_format", "linearize", "load_template", "segment_record"]
