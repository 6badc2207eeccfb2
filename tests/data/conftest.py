"""The data tests use the root conftest's tiny 2-layer teacher (real tokenizer) and hand-made records."""
