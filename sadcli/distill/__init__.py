"""Structured distillation of a teacher agent into a student (``sad distill``).

Modules: ``config`` (hyperparameters), ``data`` (batching, curriculum), ``students`` (student models),
``teacher_cache`` (offline teacher signal), ``objective`` (the trainer's view of ``sadcli.losses``),
``trainer`` (the loop), ``pipeline`` (everything together: :func:`sadcli.distill.pipeline.run`).
Nothing heavy is imported here.
"""
