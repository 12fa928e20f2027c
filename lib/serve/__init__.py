"""What only a server shared by many sessions needs: the training gate (a first-come queue), finished
sweeps shared between sessions, and how often a page redraws progress.

May import every layer below it; nothing in lib imports it except the use cases.
"""
