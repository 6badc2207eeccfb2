"""Load a student written by `sad distill` with plain transformers and let it take the next step of a
held-out task, in the format it was trained on (segmented text: ``[REASON] ...`` / ``[ACT] ...``).

    python examples/generate.py demo/student demo/heldout.seg.jsonl

Prints the student's step beside the one in the held-out trajectory. `sad eval` measures this properly
(action match, CoT match, span KL, rollouts); this script only shows that the saved folder is a plain
Hugging Face model.
"""

import json
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1] if len(sys.argv) > 1 else "demo/student"
data = sys.argv[2] if len(sys.argv) > 2 else "demo/heldout.seg.jsonl"
with open(data, encoding="utf-8") as fh:
    rec = json.loads(fh.readline())
# the history up to the second step: the task, the first step and its observation
second = next(sp for sp in rec["spans"] if sp["step"] == 1 and sp["kind"] in ("reason", "act"))
prompt = rec["text"][: second["start"]]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
ids = tok(prompt, return_tensors="pt")
out = model.generate(**ids, max_new_tokens=48, do_sample=False, stop_strings=["\n[OBS]"], tokenizer=tok,
                     pad_token_id=tok.pad_token_id or tok.eos_token_id)
step = tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).split("\n[OBS]")[0].strip()
ref = rec["steps"][1]
sys.stderr.write(f"student: {path} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters), "
                 f"held-out task {rec['id']}, step 2\n")
print(f"...{prompt[-200:]}")
print(f"student wrote:   {step}")
print(f"expert's step:   [REASON] {ref.get('reason')}  [ACT] {ref['action']}")
