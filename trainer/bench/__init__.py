"""``gotr1-train bench``: benchmarks shaped like the paper's, from the command line.

* :mod:`.harness` draws a benchmark's images into the file layout its official
  evaluator reads (T2I-CompBench's ``{prompt}_{index:06d}.png``), image *i* of
  a prompt from the stream (seed, *i*), so a killed run continues where it
  stopped and draws what an uninterrupted one would have.
* :mod:`.shapeworld` is the bench that runs on a laptop: T2I-CompBench-shaped
  categories over the clean evaluation splits, scored by the independent
  render-back judge.
* :mod:`.sources` pins the official prompt lists (commit and sha256).
* :mod:`.compbench` and :mod:`.geneval` score a T2I-CompBench or GenEval run's
  folder with the rules in :mod:`gotr1_core.benchmarks`.
* :mod:`.report` writes the table, the JSON and the chart.
"""
