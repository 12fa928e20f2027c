"""Head Lab home page (placeholder until the app issue lands)."""

import streamlit as st

st.set_page_config(page_title="Head Lab", layout="wide")
st.title("Head Lab")
st.write(
    "Explore the choices at the head of a transfer-learning model — units, activation, loss, "
    "initializer — and see what a mismatched pairing does."
)
