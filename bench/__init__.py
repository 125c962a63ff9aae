"""agentune's benchmark suite: ``python -m bench [--quick | --full | --smoke] [--only NAME ...]``.

`bench.parts.PARTS` lists the parts; `bench.suite` runs them and writes
``bench/results/<part>.json`` / ``.md`` / ``*.png``. The modules that were stand-alone
scripts (``feedback_store``, ``safety_checks``, ...) keep their ``main()``: run them as
``python -m bench.<name>``. Nothing here is imported by the product packages.
"""
