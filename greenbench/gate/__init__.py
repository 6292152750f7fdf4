"""Stage 3 of the flow, the gate: compare two models in CI.

``session`` resolves the two sides to model files and measures them interleaved through an
executor (the round loop ``run`` uses too); ``decision`` turns the rounds into pass, regressed or
inconclusive; ``calibration`` measures the gate's false-alarm and detection rates on this machine.
"""
