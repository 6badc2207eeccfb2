"""The ReAct agent loop (:mod:`sadcli.agent.loop`), its environment workers and the collect library.

``sad collect`` uses it with teacher policies; ``sad eval`` will use it with students.
"""
