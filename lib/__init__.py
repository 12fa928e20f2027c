"""Head Lab engine: everything the app computes, with no Streamlit import."""

import os

# TensorFlow's C++ start-up chatter is noise for a learner; real errors still surface as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Head Lab runs many tiny ops (small heads, side by side, several sessions): one thread per op and
# one op per core beats splitting each op across cores (measured: a 6-head sweep ~20% faster on 2
# cores, feature extraction ~20% slower). Both must be set before TensorFlow starts; override freely.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", str(max(2, len(os.sched_getaffinity(0)))))
