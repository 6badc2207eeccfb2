"""Load a student written by `sad distill` with plain transformers and let it act on a task.

    python examples/generate.py demo/student
"""

import sys

from transformers import AutoModelForCausalLM, AutoTokenizer

path = sys.argv[1] if len(sys.argv) > 1 else "demo/student"
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path)
prompt = ("You are in the kitchen. You see a fridge that is closed and a counter with an apple on it.\n"
          "Your task is to: put the apple in the fridge.\n[REASON]")
ids = tok(prompt, return_tensors="pt")
out = model.generate(**ids, max_new_tokens=40, do_sample=False)
sys.stderr.write(f"student: {path} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters)\n")
print(prompt + tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
