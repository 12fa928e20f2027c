"""Head Lab engine: everything the app computes, with no Streamlit import."""
