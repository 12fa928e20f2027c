"""A finished sweep as people see it: Plotly figures, the HTML report, and JSON/CSV results.

May import every layer below it: lib.common, lib.data, lib.backbones, lib.heads and lib.train.
"""
