"""Streamlit building blocks shared by the pages (widgets and layout only; numbers come from lib/)."""
