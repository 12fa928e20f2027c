"""Datasets on their way in: from a sample name, a zip or a folder to a `TaskData`, the one shape in
which a dataset reaches the engine. Sample datasets, uploads and their safety checks, image decoding,
the synthetic shapes, and the Data page's gallery helpers.

May import lib.common only. No Keras (numpy, PIL, plotly), so the Data page and the CLI load fast.
"""
