"""The exercise stubs a learner copies with ``minitransformer exercises start N``.

Each file states one small task: a function with its docstring, shapes and hints, whose body
raises ``NotImplementedError`` until the learner fills it in. No solutions live here; the checks
in ``minitransformer.exercises.checks`` compare a learner's answer with the library's own code.
"""
