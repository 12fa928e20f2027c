"""Head Lab engine: everything the app computes, with no Streamlit import."""

import os

# TensorFlow's C++ start-up chatter is noise for a learner; real errors still surface as exceptions.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
