"""Critique distillation: a teacher writes reasoning + answer for labelled tasks, checked against gold.

- ``gold``: a task row's gold answer (labels, category as the prompt shows it, OOD name) and the
  check that keeps or rejects a teacher's answer
- ``teachers``: the ``Teacher`` seam: any bench backend behind a teacher prompt template, and the
  offline ``template`` teacher that writes a short critique from the row's own fields
- ``runner``: ``run_distill``: generation cache and resume, the SFT dataset and ``report.md``

The command line is ``proguard distill``; ``proguard sft`` trains on what it writes.
"""
