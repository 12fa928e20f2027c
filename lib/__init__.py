"""Head Lab engine: everything the app computes, with no Streamlit import.

Packages follow the data's path, one job each. A module may import its own package and the packages
before it in `LAYERS`, never one after it (tests/test_layering.py checks every import, also those
inside functions):

    common < data < backbones < heads < train < report < serve < classroom < the use cases

The foundation is the `lib/common/` package (errors, files, the server's limits, text safety), which
every layer may import. The use cases are the top-level modules `experiment.py`, `lessons.py`,
`workshop.py` (a teacher's room: questions, votes, the measured reveal) and `cli.py` (`python -m lib`): they may import any package, and no package imports them.
"""

import os

# The layers, lowest first: a package may import only its own layer and those before it.
LAYERS = ("common", "data", "backbones", "heads", "train", "report", "serve", "classroom")
# The only modules at the top of lib/: they use the packages; every other module belongs to one.
USE_CASES = ("experiment", "lessons", "workshop", "cli")

# TensorFlow's C++ start-up chatter is noise for a learner; real errors still surface as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Head Lab runs many tiny ops (small heads, side by side, several sessions): one thread per op and
# one op per core beats splitting each op across cores (measured: a 6-head sweep ~20% faster on 2
# cores, feature extraction ~20% slower). Both must be set before TensorFlow starts; override freely.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(max(2, len(os.sched_getaffinity(0)))))
